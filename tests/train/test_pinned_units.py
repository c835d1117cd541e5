"""Pinned: the Trainer's evaluation metrics and predictions are in target units, checked by hand.

Each model here is small enough that its outputs are written out in the test (a linear map of summed node
features; a spring energy with analytic forces); targets, scaler and metrics are computed from them with
plain tensor arithmetic or scikit-learn, never through the Trainer's own helpers.
"""

from __future__ import annotations

import math

import pytest
import torch
from sklearn.metrics import precision_recall_fscore_support, roc_auc_score
from torch import Tensor, nn
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader
from torch_geometric.nn import global_add_pool

from geoadapt import Spec
from geoadapt.dtypes import default_dtype
from geoadapt.train import Trainer


class PooledLinear(nn.Module):
    """``W sum_i x_i + b`` per graph: outputs ``(B, out_dim)``."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim)
        self.spec = Spec(fields={"x": f"{in_dim}x0e"}, output=f"{out_dim}x0e", positions=())

    def forward(self, data: Batch) -> Tensor:
        return self.lin(global_add_pool(data.x, data.batch))


def by_hand(model: PooledLinear, graphs: list[Data]) -> Tensor:
    """The model's raw outputs, one graph at a time: ``(B, out_dim)``."""
    W, b = model.lin.weight.detach(), model.lin.bias.detach()
    return torch.stack([g.x.sum(0) @ W.T + b for g in graphs])


def graphs(count: int, seed: int, in_dim: int = 3) -> list[Data]:
    generator = torch.Generator().manual_seed(seed)
    return [Data(x=torch.randn(2 + k % 4, in_dim, generator=generator, dtype=torch.float64)) for k in range(count)]


@pytest.fixture
def float64():
    with default_dtype(torch.float64):
        yield


def regression_sets() -> tuple[list[Data], list[Data]]:
    """Two targets on very different scales (per-column standardization matters)."""
    train, val = graphs(12, seed=0), graphs(8, seed=1)
    generator = torch.Generator().manual_seed(2)
    for g in train + val:
        s = g.x.sum(0)
        noise = torch.randn(2, generator=generator, dtype=torch.float64)
        g.y = torch.stack([100.0 + 5.0 * s[0] + 2.0 * noise[0], -0.02 + 0.001 * s[1] + 0.0005 * noise[1]])[None]
    return train, val


def test_regression_metrics_and_predictions_are_in_target_units(float64):
    train, val = regression_sets()
    torch.manual_seed(0)
    model = PooledLinear(3, 2)
    initial = model.lin.weight.detach().clone()
    trainer = Trainer(model, "regression", groups=[], max_epochs=3, lr=0.05, progress=False)
    trainer.fit(DataLoader(train, batch_size=4))
    assert not torch.equal(model.lin.weight, initial)  # trained: the hand computation reads the new weights
    # The scaler, by hand: per-column mean and (n - 1) standard deviation of the training targets.
    ys = torch.cat([g.y for g in train])
    mean = ys.sum(0) / len(train)
    std = ((ys - mean).pow(2).sum(0) / (len(train) - 1)).sqrt()
    assert trainer.task.scaler.mean == pytest.approx(mean.tolist(), rel=1e-12)
    assert trainer.task.scaler.std == pytest.approx(std.tolist(), rel=1e-12)
    # Predictions in target units: the standardized outputs times std plus mean.
    pred = by_hand(model, val) * std + mean
    y = torch.cat([g.y for g in val])
    loader = DataLoader(val, batch_size=3)
    predictor = trainer.predictor()
    with torch.no_grad():
        assert torch.allclose(torch.cat([predictor(b) for b in loader]), pred, rtol=1e-12, atol=0)
    err = pred - y
    r2 = [1 - err[:, c].pow(2).sum() / (y[:, c] - y[:, c].mean()).pow(2).sum() for c in range(2)]
    metrics = trainer.evaluate(loader)
    assert metrics["mse"] == pytest.approx(float(err.pow(2).mean()), rel=1e-10)
    assert metrics["rmse"] == pytest.approx(math.sqrt(float(err.pow(2).mean())), rel=1e-10)
    assert metrics["mae"] == pytest.approx(float(err.abs().mean()), rel=1e-10)
    assert metrics["r2"] == pytest.approx(float(sum(r2) / 2), rel=1e-10)
    assert model.target_scaler is trainer.task.scaler  # the model carries its scaler (checkpoints save it)


def classification_sets(classes: int) -> tuple[list[Data], list[Data]]:
    train, val = graphs(16, seed=3), graphs(24, seed=4)
    generator = torch.Generator().manual_seed(5)
    for g in train + val:
        score = g.x.sum(0)[0] + 1.5 * torch.randn((), generator=generator, dtype=torch.float64)
        label = int(score > 0) if classes == 2 else int(score > -1) + int(score > 1)
        g.y = torch.tensor([label])
    return train, val


@pytest.mark.parametrize("out_dim, classes", [(1, 2), (2, 2), (3, 3)], ids=["one logit", "two logits", "3 classes"])
def test_classification_metrics_from_the_logits_by_hand_and_sklearn(out_dim, classes, float64):
    train, val = classification_sets(classes)
    torch.manual_seed(0)
    model = PooledLinear(3, out_dim)
    trainer = Trainer(model, "classification", groups=[], max_epochs=3, lr=0.05, progress=False)
    trainer.fit(DataLoader(train, batch_size=4))
    logits = by_hand(model, val)
    labels = torch.cat([g.y for g in val])
    loader = DataLoader(val, batch_size=5)
    with torch.no_grad():  # classifiers predict raw logits: nothing to de-standardize
        assert torch.allclose(torch.cat([trainer.predictor()(b) for b in loader]), logits, rtol=1e-12, atol=0)
    if out_dim == 1:  # one logit: class 1 when the logit is positive; probability by the sigmoid
        predicted, prob = (logits[:, 0] > 0).long(), torch.sigmoid(logits[:, 0])
        auc = roc_auc_score(labels.numpy(), prob.numpy())
    else:
        predicted, prob = logits.argmax(-1), torch.softmax(logits, -1)
        auc = (
            roc_auc_score(labels.numpy(), prob[:, 1].numpy())
            if classes == 2
            else roc_auc_score(labels.numpy(), prob.numpy(), multi_class="ovr")
        )
    assert 0 < int((predicted == 1).sum()) < len(val) and 0.5 < auc < 1  # neither trivial nor perfect
    metrics = trainer.evaluate(loader)
    assert metrics["accuracy"] == pytest.approx(float((predicted == labels).double().mean()), abs=1e-15)
    assert metrics["roc_auc"] == pytest.approx(auc, abs=1e-12)
    # Precision, recall and F1 today: of the positive class for one logit, macro-averaged for two or more logits
    # (the same binary classifier reports different precision with one logit and with two).
    average = "binary" if out_dim == 1 else "macro"
    precision, recall, f1, _ = precision_recall_fscore_support(
        labels.numpy(), predicted.numpy(), average=average, zero_division=0
    )
    assert (metrics["precision"], metrics["recall"], metrics["f1"]) == pytest.approx((precision, recall, f1))


class Springs(nn.Module):
    """``E_g = k n_g sum_i |r_i - c_g|^2 + e0 n_g`` (``c_g``: centroid, ``n_g``: atoms) in eV; forces by hand:
    ``F_i = -2 k n_g (r_i - c_g)`` in eV/Å."""

    spec = Spec(fields={"pos": "1o"}, output="0e")

    def __init__(self) -> None:
        super().__init__()
        self.k, self.e0 = nn.Parameter(torch.tensor(0.7)), nn.Parameter(torch.tensor(-3.0))

    def forward(self, data: Batch) -> Tensor:
        energies = []
        for g in range(int(data.num_graphs)):
            pos = data.pos[data.batch == g]
            n = pos.shape[0]
            energies.append(self.k * n * (pos - pos.mean(0)).pow(2).sum() + self.e0 * n)
        return torch.stack(energies)[:, None]

    def by_hand(self, graph: Data) -> tuple[float, Tensor]:
        k, e0, n = float(self.k), float(self.e0), graph.num_nodes
        centered = graph.pos - graph.pos.mean(0)
        return k * n * float(centered.pow(2).sum()) + e0 * n, -2 * k * n * centered


def labelled_frames(count: int, seed: int) -> list[Data]:
    """Frames of 2 to 6 atoms with energy (eV) and force (eV/Å) labels that no spring model fits exactly."""
    generator = torch.Generator().manual_seed(seed)
    frames = []
    for k in range(count):
        n = 2 + k % 5
        pos = torch.randn(n, 3, generator=generator, dtype=torch.float64)
        energy = torch.tensor([[-3.2 * n + 0.3 * float(torch.randn((), generator=generator))]], dtype=torch.float64)
        force = -1.1 * (pos - pos.mean(0)) + 0.2 * torch.randn(n, 3, generator=generator, dtype=torch.float64)
        frames.append(Data(pos=pos, z=torch.ones(n, dtype=torch.long), energy=energy, force=force))
    return frames


def test_potential_metrics_are_mev_per_atom_and_ev_per_angstrom_by_hand(float64):
    train, val = labelled_frames(10, seed=0), labelled_frames(9, seed=1)
    model = Springs()
    trainer = Trainer(model, "potential", groups=[], max_epochs=2, lr=0.05, progress=False)
    trainer.fit(DataLoader(train, batch_size=4))
    assert float(model.k) != pytest.approx(0.7)  # trained: the hand computation reads the new parameters
    energy_error, atoms, force_error = [], [], []
    for frame in val:
        energy, forces = model.by_hand(frame)
        energy_error.append(abs(energy - float(frame.energy)))
        atoms.append(frame.num_nodes)
        force_error.append(forces - frame.force)
    force_error = torch.cat(force_error)
    metrics = trainer.evaluate(DataLoader(val, batch_size=4))
    per_atom = [e / n for e, n in zip(energy_error, atoms)]
    assert metrics["energy_mae"] == pytest.approx(1000 * sum(per_atom) / len(val), rel=1e-10)  # meV/atom
    assert metrics["energy_mae_total"] == pytest.approx(sum(energy_error) / len(val), rel=1e-10)  # eV
    assert metrics["force_mae"] == pytest.approx(float(force_error.abs().mean()), rel=1e-10)  # eV/Å
    assert metrics["force_rmse"] == pytest.approx(float(force_error.pow(2).mean().sqrt()), rel=1e-10)
