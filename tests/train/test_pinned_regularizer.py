"""Pinned, through the Trainer's history: the equivariance penalty is round-off for an exactly invariant model,
positive for a model that reads raw coordinates, and a heavy weight keeps that model's error far below
unregularized training on the same data and seed."""

from __future__ import annotations

import torch
from torch_geometric.data import Batch

from geoadapt.dtypes import default_dtype
from geoadapt.groups import SO3
from geoadapt.models import build
from geoadapt.regularizers import EquivarianceRegularizer
from geoadapt.train import Trainer


def _labelled(molecules: Batch) -> Batch:
    graphs = molecules.to_data_list()
    for k, g in enumerate(graphs):
        g.y = torch.tensor([[float(k)]], dtype=molecules.pos.dtype)
    return Batch.from_data_list(graphs)


def _fit(arch: str, batch: Batch, weight: float, epochs: int) -> list[dict[str, float]]:
    torch.manual_seed(0)
    model = build(arch, hidden=16)
    # Every graph copied on every step with a fixed weight: the penalty logged is the plain mean squared error.
    reg = EquivarianceRegularizer(SO3(), model.spec, weight=weight, every=1, batch_fraction=1.0, n_samples=2)
    trainer = Trainer(model, "regression", [reg], max_epochs=epochs, lr=1e-2, eq_samples=8, progress=False)
    return trainer.fit([batch], [batch])


def test_penalty_is_round_off_for_an_exact_model_and_positive_for_a_naive_one(molecules64):
    batch = _labelled(molecules64)
    with default_dtype(torch.float64):
        exact = _fit("egnn", batch, weight=1.0, epochs=2)
        naive = _fit("naive_gnn", batch, weight=1.0, epochs=2)
    assert all(row["train_penalty/SO3"] < 1e-20 and row["val_equivariance_error"] < 1e-10 for row in exact)
    assert all(row["train_penalty/SO3"] > 1e-6 and row["val_equivariance_error"] > 1e-3 for row in naive)


def test_a_heavy_penalty_keeps_a_naive_model_near_equivariant(molecules):
    batch = _labelled(molecules)
    plain = _fit("naive_gnn", batch, weight=0.0, epochs=12)[-1]
    regularized = _fit("naive_gnn", batch, weight=100.0, epochs=12)[-1]
    assert regularized["val_equivariance_error"] * 5 < plain["val_equivariance_error"]
