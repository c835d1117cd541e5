"""A wrapped model's graph form: a checkpoint of your own class loads where the class cannot be imported (its module
deleted, in a fresh process), the class path stays the first choice, and a graph naming anything but core ATen
operators is refused before it runs. ``save`` and ``load`` apply the hooks; the helpers below also check that the
file holds the graph form (and can drop it, to see what loading says without one)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torch_geometric.nn import global_add_pool

from geoadapt import Spec, checkpoints
from geoadapt.adapt import make_strategy
from geoadapt.checkpoints import load, save
from geoadapt.featurize import MOLECULE_SPEC
from geoadapt.models import custom, wrap
from geoadapt.models.op_graph import OpGraph, UnsafeGraphError
from geoadapt.models.portable import portable_form
from geoadapt.serialization import atomic_save

ROOT = Path(__file__).resolve().parents[2]
MODULE = '''
import torch
from torch import nn
from torch_geometric.nn import global_add_pool


class ShiftedGNN(nn.Module):
    """Atom features and raw coordinates through an MLP, summed per molecule (sizes from ``num_graphs``)."""

    def __init__(self, in_dim: int, hidden: int = 16):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(in_dim + 3, hidden), nn.SiLU(), nn.Linear(hidden, 1))
        self.register_buffer("shift", torch.tensor([0.25]))

    def forward(self, data):
        h = self.mlp(torch.cat([data.x, data.pos], dim=-1))
        return global_add_pool(h, data.batch, size=data.num_graphs) + self.shift
'''


def save_with_hook(model: nn.Module, path: Path) -> Path:
    """``save``, which stores the graph form (or why there is none) under ``"portable"`` (checked here)."""
    save(model, path)
    form = torch.load(path, map_location="cpu", weights_only=True)["portable"]
    assert set(form) in ({"graph"}, {"error"}), form
    return path


def load_with_hook(path: Path, **options) -> nn.Module:
    """``load``, whose first step is the load hook (``in_place_of_class(read(path), builder, trust_code)``)."""
    return load(path, **options)


def without_graph_form(path: Path, out: Path) -> Path:
    """A copy of the checkpoint at ``path`` without its graph form (as files written before geoadapt stored one)."""
    payload = checkpoints.read(path)
    payload.pop("portable")
    atomic_save(payload, out)
    return out


class CountsFromValues(nn.Module):
    """Pools without a size: PyG reads the number of graphs from ``batch.max()``, which export cannot capture."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 1)

    def forward(self, data):
        return global_add_pool(self.linear(data.pos), data.batch)


def test_a_class_deleted_from_disk_loads_from_its_graph_form_in_a_fresh_process(molecules, tmp_path):
    folder = tmp_path / "code"
    folder.mkdir()
    (folder / "my_gnn_module.py").write_text(textwrap.dedent(MODULE))
    sys.path.insert(0, str(folder))
    try:
        import my_gnn_module

        torch.manual_seed(0)
        model = wrap(my_gnn_module.ShiftedGNN(17), MOLECULE_SPEC, symmetry="Permutation", init={"in_dim": 17})
        expected = model(molecules)  # the first batch it sees is the one its forward is captured on
        path = save_with_hook(model, tmp_path / "mine.pt")
        custom.REGISTERED.pop(custom.class_path(my_gnn_module.ShiftedGNN))
    finally:
        sys.path.remove(str(folder))
        sys.modules.pop("my_gnn_module", None)
    (folder / "my_gnn_module.py").unlink()
    torch.save({"batch": molecules.to_data_list()[2:], "expected": expected[2:].detach()}, tmp_path / "check.pt")
    script = textwrap.dedent(f"""
        import torch
        from torch_geometric.data import Batch
        from tests.models.test_portable import without_graph_form
        from geoadapt.checkpoints import load
        try:
            load(without_graph_form({str(path)!r}, {str(tmp_path / "old.pt")!r}))
        except ValueError as err:
            print("class:", str(err).split(";")[0])
        model = load({str(path)!r})
        check = torch.load({str(tmp_path / "check.pt")!r}, weights_only=False)
        got = model(Batch.from_data_list(check["batch"]))
        print("error:", float((got - check["expected"]).abs().max()), type(model).__name__, model.arch)
        got.sum().backward()
        print("trainable:", all(p.grad is not None for p in model.parameters()))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = dict(line.split(": ", 1) for line in result.stdout.strip().splitlines())
    assert lines["class"].startswith("model class: the checkpoint asks to import and call 'my_gnn_module:ShiftedGNN'")
    assert "has no graph form to rebuild it from instead: the checkpoint holds no graph form" in lines["class"]
    error, kind, arch = lines["error"].split()
    assert float(error) < 1e-6 and kind == "OpGraph" and arch == "op_graph"
    assert lines["trainable"] == "True"


def test_an_adapted_model_loads_whole_and_the_class_path_stays_first(molecules, tmp_path):
    class Local(nn.Module):
        def __init__(self, hidden: int = 8) -> None:
            super().__init__()
            self.mlp = nn.Sequential(nn.Linear(3, hidden), nn.Tanh(), nn.Linear(hidden, 1))

        def forward(self, data):
            return global_add_pool(self.mlp(data.pos), data.batch, size=data.num_graphs)

    torch.manual_seed(0)
    spec = Spec(fields={"pos": "1o"}, output="0e")
    adapted = make_strategy("lora", wrap(Local(), spec, init={"hidden": 8}), spec, None, rank=2).model
    with torch.no_grad():
        for p in adapted.parameters():
            p.add_(0.1 * torch.randn_like(p))  # adapters away from zero: their part of the graph counts
    expected = adapted(molecules)
    path = save_with_hook(adapted, tmp_path / "lora.pt")
    same = load_with_hook(path)  # the class is registered in this process (wrap did it): the class comes back
    assert same.arch == custom.ARCH and not isinstance(same, OpGraph)
    assert torch.allclose(same(molecules), expected) and load_with_hook(path, builder=Local).arch == custom.ARCH
    custom.REGISTERED.pop(custom.class_path(Local))
    graph = load_with_hook(path)
    assert isinstance(graph, OpGraph) and torch.allclose(graph(molecules), expected, atol=1e-6)
    assert {n for n, p in graph.named_parameters() if p.requires_grad} == {
        n for n, p in adapted.named_parameters() if p.requires_grad
    }  # the adapters train, the frozen base stays frozen


def test_a_forward_that_reads_sizes_from_values_says_why_it_has_no_graph_form(molecules, tmp_path):
    model = wrap(CountsFromValues(), Spec(fields={"pos": "1o"}, output="0e"))
    unseen = portable_form(copy.deepcopy(model))
    model(molecules)
    path = save_with_hook(model, tmp_path / "counts.pt")
    custom.REGISTERED.pop(custom.class_path(CountsFromValues))
    with pytest.raises(ValueError) as caught:
        load_with_hook(path)
    message = str(caught.value)
    assert "size=data.num_graphs" in message and "builder=" in message and "register_class" in message
    assert "trust_code=True" in message and "saw a batch" in unseen["error"]


def test_a_graph_naming_anything_but_core_aten_is_refused(molecules):
    class Linear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = nn.Linear(3, 1)

        def forward(self, data):
            return global_add_pool(self.linear(data.pos), data.batch, size=data.num_graphs)

    model = wrap(Linear(), Spec(fields={"pos": "1o"}, output="0e"))
    model(molecules)
    record = portable_form(model)["graph"]
    assert OpGraph(record)  # the captured graph is accepted
    for op in ("aten.from_file.default", "builtins.eval", "os.system", "aten.__class__.x", "torch.load"):
        tampered = copy.deepcopy(record)
        tampered["nodes"][0]["op"] = op
        with pytest.raises(UnsafeGraphError, match="graph operator"):
            OpGraph(tampered)
    tampered = copy.deepcopy(record)
    tampered["nodes"][-1]["kwargs"]["dtype"] = {"dtype": "__builtins__"}
    with pytest.raises(UnsafeGraphError, match="dtype"):
        OpGraph(tampered)
