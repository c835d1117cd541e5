"""The regularizer in loops of one's own: a plain PyTorch loop and a LightningModule keep a coordinate-reading GNN
rotation invariant, measured by the metrics (an independent route), against the same loop without it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch_geometric.loader import DataLoader

from geoadapt.data import load
from geoadapt.groups import SO3
from geoadapt.metrics import measure_equivariance
from geoadapt.models import build
from geoadapt.regularizers import EquivarianceRegularizer, mean_penalty

EPOCHS = 15


@pytest.fixture(scope="module")
def molecules():
    """120 training and 40 validation molecules of rdkit's ChEMBL2321810 set (real conformers), targets
    standardized on the training molecules (so the targets' spread is 1)."""
    graphs = [g.clone() for g in load("rdkit_chembl2321810", limit=160, progress=False).graphs]
    y = torch.cat([g.y for g in graphs[:120]])
    for g in graphs:
        g.y = (g.y - y.mean()) / y.std()
    return graphs[:120], graphs[120:]


def loader(graphs: list, shuffle: bool = True) -> DataLoader:
    return DataLoader(graphs, batch_size=32, shuffle=shuffle, generator=torch.Generator().manual_seed(0))


def so3_error(model: torch.nn.Module, graphs: list) -> float:
    """Mean relative SO(3) error on ``graphs``, relative to the targets' spread (1: they are standardized)."""
    batches = list(loader(graphs, shuffle=False))
    return measure_equivariance(model, batches, SO3(), model.spec, 4, torch.Generator().manual_seed(0), scale=1.0).error


def penalty(model: torch.nn.Module, graphs: list, reg: EquivarianceRegularizer) -> float:
    """The unweighted penalty ``E[R]`` of ``model`` on ``graphs`` (every graph copied four times)."""
    return mean_penalty(model, loader(graphs, shuffle=False), reg, generator=torch.Generator().manual_seed(1))


def plain_loop(graphs: list, regularize: bool) -> tuple[torch.nn.Module, EquivarianceRegularizer]:
    torch.manual_seed(0)
    model = build("naive_gnn")
    reg = EquivarianceRegularizer(SO3(), model.spec)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = loader(graphs)
    for _ in range(EPOCHS):
        for batch in data:
            out = model(batch)
            task = F.mse_loss(out, batch.y)
            loss = task + reg(model, batch, outputs=out, task_loss=task) if regularize else task
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        reg.end_epoch()
    return model, reg


def test_a_plain_loop_keeps_the_symmetry(molecules):
    train, val = molecules
    torch.manual_seed(0)
    untrained = build("naive_gnn")  # the loops' initial weights
    start = penalty(untrained, train, EquivarianceRegularizer(SO3(), untrained.spec))
    plain, _ = plain_loop(train, regularize=False)
    regularized, reg = plain_loop(train, regularize=True)
    end = penalty(regularized, train, reg)
    assert end * 10 < start  # the (unweighted) penalty fell
    assert reg.weight != 1.0 and int(reg.balancer.balance_steps) >= 2  # the weight set itself
    assert int(reg.steps_taken) == EPOCHS * 4 and int(reg.epoch) == EPOCHS
    assert 5 * so3_error(regularized, val) <= so3_error(plain, val)


def test_a_lightning_module_keeps_the_symmetry(molecules):
    pl = pytest.importorskip("lightning.pytorch")
    from geoadapt.integrations.lightning import RegularizerCallback

    class Regressor(pl.LightningModule):
        def __init__(self, regularize: bool) -> None:
            super().__init__()
            self.model = build("naive_gnn")
            self.reg = EquivarianceRegularizer(SO3(), self.model.spec) if regularize else None

        def training_step(self, batch, batch_idx):
            out = self.model(batch)
            task = F.mse_loss(out, batch.y)
            return task if self.reg is None else task + self.reg(self.model, batch, outputs=out, task_loss=task)

        def configure_optimizers(self):
            return torch.optim.Adam(self.model.parameters(), lr=3e-3)

    def fit(regularize: bool) -> Regressor:
        torch.manual_seed(0)
        module = Regressor(regularize)
        trainer = pl.Trainer(
            max_epochs=EPOCHS,
            callbacks=[RegularizerCallback(module.reg)] if regularize else [],
            accelerator="cpu",
            logger=False,
            enable_progress_bar=False,
            enable_checkpointing=False,
            enable_model_summary=False,
        )
        trainer.fit(module, loader(molecules[0]))
        return module

    plain, regularized = fit(False), fit(True)
    train, val = molecules
    torch.manual_seed(0)
    start = penalty(build("naive_gnn"), train, EquivarianceRegularizer(SO3(), plain.model.spec))
    assert penalty(regularized.model, train, regularized.reg) * 10 < start
    assert int(regularized.reg.epoch) == EPOCHS  # the callback closed every epoch
    assert 5 * so3_error(regularized.model, val) <= so3_error(plain.model, val)


def test_passed_outputs_spare_the_batch_forward_and_give_the_same_penalty(molecules):
    batch = next(iter(loader(molecules[0], shuffle=False)))
    torch.manual_seed(0)
    model = build("naive_gnn")
    sizes: list[int] = []
    model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].num_graphs))
    reg = EquivarianceRegularizer(SO3(), model.spec, every=1, batch_fraction=0.25)
    alone = reg(model, batch, generator=torch.Generator().manual_seed(3))
    assert sizes == [32 + 8]  # the batch stacked with its copies
    out = model(batch)
    reused = reg(model, batch, outputs=out, generator=torch.Generator().manual_seed(3))
    assert sizes[1:] == [32, 8]  # the user's forward, then the copies alone
    assert float(reused) == pytest.approx(float(alone), rel=1e-5) and float(alone) > 0
    reused.backward()  # differentiable through the user's outputs and the copies
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_the_task_loss_sets_the_weight_from_gradient_norms_as_by_hand(molecules):
    """On a balancing step every graph is copied and the weight becomes ``ratio x |∇task| / |∇penalty|``."""
    batch = next(iter(loader(molecules[0], shuffle=False)))
    torch.manual_seed(0)
    model = build("naive_gnn")
    reg = EquivarianceRegularizer(SO3(), model.spec)
    out = model(batch)
    task = F.mse_loss(out, batch.y)
    weighted = reg(model, batch, outputs=out, task_loss=task, generator=torch.Generator().manual_seed(4))
    # By hand: the same rotations (the whole batch is copied), the penalty as a mean squared difference.
    rotations = SO3().sample(batch.num_graphs, torch.Generator().manual_seed(4)).to(batch.pos.dtype)
    moved = batch.clone()
    moved.pos = torch.einsum("nij,nj->ni", rotations[batch.batch], batch.pos)
    by_hand = (model(moved) - out).pow(2).mean()
    params = [p for p in model.parameters() if p.requires_grad]

    def norm(loss: torch.Tensor) -> torch.Tensor:
        return torch.cat([g.flatten() for g in torch.autograd.grad(loss, params, retain_graph=True)]).norm()

    assert reg.weight == pytest.approx(0.5 * float(norm(task) / norm(by_hand)), rel=1e-4)
    # every="auto": the penalty on every other step, doubled (its norm above is the undoubled one's)
    assert float(weighted) == pytest.approx(2 * reg.weight * float(by_hand), rel=1e-4)
    assert int(reg.balancer.balance_steps) == 1


def test_steps_and_measurements(molecules):
    """A training call is a step (lazy terms skip every other one); a call under no_grad measures and counts none."""
    batch = next(iter(loader(molecules[0], shuffle=False)))
    model = build("naive_gnn")
    reg = EquivarianceRegularizer(SO3(), model.spec, weight=2.0)  # every="auto": every other step, doubled
    first, second = reg(model, batch), reg(model, batch)
    assert float(first) > 0 and float(second) == 0.0 and int(reg.steps_taken) == 2
    with torch.no_grad():
        measured = reg(model, batch)
    assert float(measured) > 0 and int(reg.steps_taken) == 2


def test_a_constraint_takes_its_dual_step_after_the_optimizer_step(molecules):
    """The multiplier moves on a step's penalty at the next call (the step's backward is behind it) or at
    ``end_epoch``, by the rule of ``step_update``."""
    import math

    from geoadapt.regularizers import ConstrainedEquivarianceRegularizer

    batch = next(iter(loader(molecules[0], shuffle=False)))
    model = build("naive_gnn")
    bounded = ConstrainedEquivarianceRegularizer(EquivarianceRegularizer(SO3(), model.spec), epsilon=1e-3, margin=1.0)
    loss = bounded(model, batch)
    assert float(bounded.multiplier) == 1.0  # not yet: the backward still needs it
    loss.backward()
    value = float(loss) + 1e-3  # λ = 1: the loss is R - ε
    bounded(model, batch)
    step = 0.1 * max(min((value - 1e-3) / 1e-3, 1.0), -1.0)
    assert float(bounded.multiplier) == pytest.approx(math.exp(step), rel=1e-5)
    bounded.end_epoch()
    assert float(bounded.multiplier) > math.exp(step) and int(bounded.epoch) == 1


def test_the_trainer_takes_regularizers_that_implement_the_interface():
    from geoadapt.train import Trainer

    model = build("naive_gnn")
    with pytest.raises(TypeError, match=r"regularizers\[0\]: expected an nn.Module implementing"):
        Trainer(model, "regression", [torch.nn.Linear(2, 2)])
