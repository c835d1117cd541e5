"""Warnings the Trainer gives while it trains, not only at the end: a classifier collapsing to one class (the
epoch it started named) and a bound forecast to be missed (said once, the epoch the forecast shows it)."""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.loader import DataLoader
from torch_geometric.nn import global_add_pool, global_mean_pool

from geoadapt.data import load
from geoadapt.groups import SO3, Permutation
from geoadapt.regularizers import ConstrainedEquivarianceRegularizer, EquivarianceRegularizer
from geoadapt.spec import Spec
from geoadapt.train import Trainer


class Pushed(nn.Module):
    """A pooled MLP classifier whose logits the test can push towards class 0 from outside (``push``)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(7, 32), nn.ReLU(), nn.Linear(32, 2))
        self.spec = Spec(fields={"x": "7x0e"}, output="2x0e", positions=())
        self.push = 0.0

    def forward(self, data):
        out = self.net(global_add_pool(data.x, data.batch))
        return out + torch.tensor([self.push, -self.push])


def graph_sizes() -> tuple[DataLoader, DataLoader]:
    """MUTAG relabelled by size (above the median number of atoms or not): a task a pooled MLP learns in a few
    epochs, with balanced classes (150 training graphs, 38 validation graphs)."""
    graphs = [g.clone() for g in load("mutag")]
    median = sorted(g.num_nodes for g in graphs)[len(graphs) // 2]
    for g in graphs:
        g.y = torch.tensor([int(g.num_nodes > median)])
    return DataLoader(graphs[:150], batch_size=32, shuffle=True), DataLoader(graphs[150:], batch_size=64)


def test_a_collapse_is_warned_the_epoch_it_is_detected_naming_its_start():
    torch.manual_seed(0)
    train, val = graph_sizes()
    model = Pushed()
    trainer = Trainer(model, "classification", groups=[Permutation()], max_epochs=10, lr=1e-2, progress=False)
    for epoch in range(8):
        model.push = 0.0 if epoch < 4 else 1e3  # from epoch 4 on, every graph is called class 0
        trainer.fit(train, val, epochs=1)
        if epoch < 6:  # three falling epochs (4, 5, 6) make a collapse: nothing said before the third
            assert not any("collapsing" in w for w in trainer.warnings), (epoch, trainer.warnings)
        if epoch == 6:
            collapse = [w for w in trainer.warnings if "collapsing" in w]
            assert collapse == [w for w in collapse if w.startswith("epoch 6: ")] and len(collapse) == 1, collapse
            assert "since epoch 4" in collapse[0]
    assert trainer.history[3]["val_min_class_recall"] > 0.5  # it had learned both classes before the push
    assert trainer.history[-1]["val_min_class_recall"] == 0.0 and trainer.history[-1]["val_predicted_majority"] == 1
    assert sum("collapsing" in w for w in trainer.warnings) == 1  # said once, not every epoch after


def test_a_healthy_classifier_gets_no_collapse_warning():
    torch.manual_seed(0)
    train, val = graph_sizes()
    trainer = Trainer(Pushed(), "classification", groups=[Permutation()], max_epochs=8, lr=1e-2, progress=False)
    trainer.fit(train, val)
    assert trainer.history[-1]["val_min_class_recall"] > 0.5
    assert not any("collaps" in w for w in trainer.warnings), trainer.warnings


class FixedTilt(nn.Module):
    """A regressor with a term in the first coordinate that no parameter can undo: not invariant, whatever it
    learns (an SO(3) bound below its error can never be met)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(17, 1)
        self.spec = Spec(fields={"x": "17x0e", "pos": "1o"}, output="0e")

    def forward(self, data):
        tilt = global_mean_pool(data.pos[:, :1] - data.pos[:, :1].mean(), data.batch)
        return self.net(global_mean_pool(data.x, data.batch)) + 3.0 * tilt


def test_a_bound_that_cannot_be_met_is_said_before_the_end(chembl_loaders):
    torch.manual_seed(0)
    model = FixedTilt()
    reg = ConstrainedEquivarianceRegularizer(
        EquivarianceRegularizer(SO3(), model.spec), epsilon=1e-6, initial_multiplier=1e6
    )  # the multiplier starts at its cap: the forecast need not wait for it to stop ramping
    trainer = Trainer(model, "regression", [reg], max_epochs=6, progress=False)
    trainer.fit(*chembl_loaders, epochs=3)  # stopped after three epochs: the forecast's window
    early = [w for w in trainer.warnings if "will NOT be met" in w]
    assert len(early) == 1 and early[0].startswith("epoch 2: ") and "the multiplier is at its cap" in early[0]
    trainer.fit(*chembl_loaders)  # the rest: the forecast is not repeated, the end says NOT met
    assert sum("will NOT be met" in w for w in trainer.warnings) == 1
    assert any("NOT met: measured" in w for w in trainer.warnings)
