"""A model whose output does not have the rows and columns of its Spec: one ValueError before any loss, and one
line with exit code 2 from ``geoadapt adapt`` and ``geoadapt evaluate``."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from geoadapt.checkpoints import save
from geoadapt.cli import main
from geoadapt.groups import SO3
from geoadapt.models import build, wrap
from geoadapt.regularizers import EquivarianceRegularizer
from geoadapt.spec import Spec
from geoadapt.train import Trainer

GRAPH_SPEC = Spec(fields={"pos": "1o"}, output="0e")


class PerAtom(nn.Module):
    """Declares a graph-level output but returns one row per atom (a missing pooling), or ``columns`` per graph."""

    def __init__(self, per_atom: bool = True, columns: int = 1) -> None:
        super().__init__()
        self.per_atom, self.lin, self.calls = per_atom, nn.Linear(3, columns), 0

    def forward(self, data: Batch) -> Tensor:
        self.calls += 1
        rows = self.lin(data.pos)
        if self.per_atom:
            return rows
        from torch_geometric.nn import global_add_pool

        return global_add_pool(rows, data.batch)


@pytest.fixture
def batch(molecules) -> Batch:
    batch = molecules.clone()
    batch.y = torch.ones(batch.num_graphs, 1)
    return batch


@pytest.mark.parametrize("regularized", [False, True])
def test_per_atom_rows_of_a_graph_level_model_are_one_error_before_any_loss(batch, regularized):
    model = wrap(PerAtom(), GRAPH_SPEC, init={})
    before = model.lin.weight.detach().clone()
    regs = [EquivarianceRegularizer(SO3(), GRAPH_SPEC)] if regularized else []
    trainer = Trainer(model, "regression", regs, max_epochs=1, groups=[], progress=False)
    with pytest.raises(ValueError) as error:
        trainer.fit([batch])
    message = str(error.value)
    graphs, atoms = batch.num_graphs, batch.num_nodes
    assert "\n" not in message and message.startswith(f"model {model.arch} (PerAtom) output:")
    assert f"expected shape ({graphs}, 1): one row per graph ({graphs} graphs in the batch)" in message
    assert message.endswith(f"got shape ({atoms}, 1)")
    assert model.calls == 1 and trainer.global_step == 0 and torch.equal(model.lin.weight, before)  # no step taken


def test_a_wrong_column_count_names_the_columns(batch):
    model = wrap(PerAtom(per_atom=False, columns=2), GRAPH_SPEC, init={"per_atom": False, "columns": 2})
    with pytest.raises(
        ValueError, match=rf"expected shape \({batch.num_graphs}, 1\).* got shape \({batch.num_graphs}, 2\)"
    ):
        Trainer(model, "classification", max_epochs=1, groups=[], progress=False).fit([batch])


def test_node_level_models_are_expected_to_give_one_row_per_node(batch):
    model = build("egnn", in_dim=17, output="1o", output_level="node", hidden=8, num_layers=1)
    model.spec = Spec(fields={"pos": "1o", "x": "17x0e"}, output="2x1o", output_level="node")  # declares 6 columns
    with pytest.raises(ValueError, match=r"targets: expected 6 values per row for the Spec output 2x1o, got shape"):
        Trainer(model, "regression", max_epochs=1, groups=[], progress=False).fit([batch])  # y: one per graph
    batch.y = torch.zeros(batch.num_nodes, 6)
    with pytest.raises(ValueError, match=rf"expected shape \({batch.num_nodes}, 6\): one row per node .* got shape"):
        Trainer(model, "regression", max_epochs=1, groups=[], progress=False).fit([batch])


@pytest.fixture
def per_atom_checkpoint(tmp_path):
    return save(wrap(PerAtom(), GRAPH_SPEC, init={}), tmp_path / "per_atom.pt")


@pytest.mark.parametrize("command", ["adapt", "evaluate"])
def test_the_command_line_says_it_in_one_line(command, per_atom_checkpoint, tmp_path, capsys):
    argv = [command, f"checkpoint={per_atom_checkpoint}", "data=rdkit_chembl2321810", "limit=40", "groups=so3"]
    if command == "adapt":
        argv += [f"out={tmp_path / 'run'}", "epochs=1", "progress=false"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(PerAtom) output: expected shape (" in err and "one row per graph" in err
    assert "group element" not in err  # the shapes, not the group action they would have broken
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()
