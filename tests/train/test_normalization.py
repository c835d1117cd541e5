"""The Trainer standardizes the targets of the task it trains on, unless asked to keep the model's."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.loader import DataLoader

from geoadapt.models import build
from geoadapt.train import Trainer

SOURCE = {"mean": [150.0], "std": [60.0]}  # a source task on another scale (TPSA-like)


def targets(loader) -> torch.Tensor:
    return torch.cat([b.y for b in loader]).double()


def test_an_adapted_model_is_trained_on_the_new_task_scale(chembl_loaders):
    model = build("naive_gnn", hidden=16)
    model.normalization = dict(SOURCE)  # as a loaded pretrained checkpoint carries it
    trainer = Trainer(model, "regression", max_epochs=1, progress=False)
    trainer.fit(chembl_loaders[0])
    y = targets(chembl_loaders[0])
    assert trainer.normalization["mean"] == pytest.approx([float(y.mean())], rel=1e-9)
    assert trainer.normalization["std"] == pytest.approx([float(y.std())], rel=1e-9)
    assert model.normalization == trainer.normalization  # saved with the model


def test_keep_normalization_keeps_the_source_scale(chembl_loaders):
    model = build("naive_gnn", hidden=16)
    model.normalization = dict(SOURCE)
    trainer = Trainer(model, "regression", max_epochs=1, progress=False, keep_normalization=True)
    trainer.fit(chembl_loaders[0])
    assert trainer.normalization == SOURCE
    with pytest.raises(ValueError, match=r"keep_normalization: expected a model that carries .* got None"):
        Trainer(build("naive_gnn", hidden=16), "regression", keep_normalization=True)


def test_nan_targets_fail_before_training_with_a_clear_error(chembl_loaders):
    graphs = [g.clone() for g in chembl_loaders[0].dataset]
    graphs[3].y = torch.full_like(graphs[3].y, float("nan"))
    trainer = Trainer(build("naive_gnn", hidden=16), "regression", max_epochs=1, progress=False)
    with pytest.raises(ValueError, match="targets: expected finite regression targets, got 1 training rows with NaN"):
        trainer.fit(DataLoader(graphs, batch_size=32))
