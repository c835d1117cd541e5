"""Pinned: a regressor adapted by any strategy, saved and loaded, predicts the same values in target units.

The target scaler fitted by the Trainer travels in the checkpoint (wrappers included, whose scaler sits on
the model they wrap); the loaded model answers in target units: its forward, and its network's raw outputs
de-standardized by hand, equal the Trainer's predictions, and so do the predictions of a new Trainer that keeps
the loaded scaler.
"""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from geoadapt.checkpoints import load, save
from geoadapt.dtypes import default_dtype
from geoadapt.models import build
from geoadapt.train import Trainer
from tests.adapt.cases import GRAPH_CASES


def _predict(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    torch.manual_seed(7)  # group_average over SO3 draws its rotations: the same draws on every call
    with torch.no_grad():
        return model(batch)


@pytest.mark.parametrize("name", sorted(GRAPH_CASES))
def test_loaded_adapted_regressor_predicts_the_same_target_units(name, molecules64, tmp_path):
    options, group = GRAPH_CASES[name]
    graphs = molecules64.to_data_list()
    for k, g in enumerate(graphs):
        g.y = torch.tensor([[40.0 + 7.0 * k * (-1) ** k]], dtype=torch.float64)  # far from mean 0, std 1
    batch = Batch.from_data_list(graphs)
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        trainer = Trainer(
            build("naive_gnn", hidden=16),
            "regression",
            strategy=name,
            strategy_options=options,
            groups=[group] if group is not None else [],
            max_epochs=1,
            lr=1e-2,
            progress=False,
        )
        trainer.fit([batch])
    expected = _predict(trainer.predictor(), batch)
    loaded = load(save(trainer.model, tmp_path / "adapted.pt")).eval()
    assert loaded.scaler == trainer.task.scaler is not None
    mean = torch.tensor(trainer.task.scaler.mean, dtype=torch.float64)
    std = torch.tensor(trainer.task.scaler.std, dtype=torch.float64)
    assert torch.allclose(_predict(loaded.network, batch) * std + mean, expected, rtol=1e-12, atol=0)
    assert torch.allclose(_predict(loaded, batch), expected, rtol=1e-12, atol=0)
    assert expected.mean() > 10  # target units, not standardized ones
    options = {"keep_normalization": True}
    again = Trainer(loaded, "regression", groups=[], task_options=options, progress=False)
    assert torch.allclose(_predict(again.predictor(), batch), expected, rtol=1e-12, atol=0)
