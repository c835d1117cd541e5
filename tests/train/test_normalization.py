"""The Trainer standardizes the targets of the task it trains on, unless asked to keep the model's."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.loader import DataLoader

from geoadapt.models import Predictor, Standardize, build
from geoadapt.train import Trainer

SOURCE = Standardize([150.0], [60.0])  # a source task on another scale (TPSA-like)


def targets(loader) -> torch.Tensor:
    return torch.cat([b.y for b in loader]).double()


def test_an_adapted_model_is_trained_on_the_new_task_scale(chembl_loaders):
    network = build("naive_gnn", hidden=16)
    model = Predictor(network, SOURCE)  # as a loaded pretrained checkpoint comes back
    trainer = Trainer(model, "regression", max_epochs=1, progress=False)
    trainer.fit(chembl_loaders[0])
    y = targets(chembl_loaders[0])
    assert trainer.task.scaler.mean == pytest.approx([float(y.mean())], rel=1e-9)
    assert trainer.task.scaler.std == pytest.approx([float(y.std())], rel=1e-9)
    assert network.target_scaler is trainer.task.scaler  # saved with the model
    assert model.scaler is trainer.task.scaler  # the predictor given answers in the new task's units


def test_keep_normalization_keeps_the_source_scale(chembl_loaders):
    model = Predictor(build("naive_gnn", hidden=16), SOURCE)
    options = {"keep_normalization": True}
    trainer = Trainer(model, "regression", max_epochs=1, progress=False, task_options=options)
    trainer.fit(chembl_loaders[0])
    assert trainer.task.scaler == SOURCE
    with pytest.raises(ValueError, match=r"keep_normalization: expected a model that carries .* got None"):
        Trainer(build("naive_gnn", hidden=16), "regression", task_options=options)


def test_nan_targets_fail_before_training_with_a_clear_error(chembl_loaders):
    graphs = [g.clone() for g in chembl_loaders[0].dataset]
    graphs[3].y = torch.full_like(graphs[3].y, float("nan"))
    trainer = Trainer(build("naive_gnn", hidden=16), "regression", max_epochs=1, progress=False)
    with pytest.raises(ValueError, match="targets: expected finite regression targets, got 1 training rows with NaN"):
        trainer.fit(DataLoader(graphs, batch_size=32))
