"""Grid search, k-fold cross-validation and the optional Optuna search."""

from __future__ import annotations

import builtins
import itertools

import numpy as np
import pytest
from torch_geometric.loader import DataLoader

from geoadapt.models import build
from geoadapt.train import Trainer, cross_validate, grid_search, kfold_indices, optuna_search


def test_grid_search_finds_the_minimum():
    result = grid_search(lambda p: {"loss": (p["x"] - 2) ** 2 + p["y"]}, {"x": [0, 1, 2, 3], "y": [1, 0]}, "loss")
    assert len(result.trials) == 8 and result.best.params == {"x": 2, "y": 0}
    assert grid_search(lambda p: {"acc": -abs(p["x"])}, {"x": [-1, 0, 2]}, "acc", mode="max").best.params == {"x": 0}
    with pytest.raises(ValueError, match="metric: expected one of"):
        grid_search(lambda p: {"loss": 1.0}, {"x": [1]}, "rmse")


def test_grid_search_covers_the_product_once():
    grid = {"lr": [1e-3, 1e-2], "depth": [1, 2, 3], "act": ["relu", "silu"]}
    seen = []
    result = grid_search(lambda p: seen.append(p) or {"loss": float(p["depth"])}, grid, "loss")
    combos = [tuple(p[name] for name in grid) for p in seen]
    assert sorted(combos, key=str) == sorted(itertools.product(*grid.values()), key=str)
    assert len(set(combos)) == len(combos) == 12 and all(list(p) == list(grid) for p in seen)
    assert [t.params for t in result.trials] == seen and result.best.params["depth"] == 1


def test_kfold_partitions_and_cross_validate_aggregates():
    folds = kfold_indices(23, k=5, seed=1)
    assert sorted(np.concatenate([f["val"] for f in folds]).tolist()) == list(range(23))
    assert all(not set(f["train"]) & set(f["val"]) for f in folds)
    assert all(sorted([*f["train"], *f["val"]]) == list(range(23)) for f in folds)
    assert sorted(len(f["val"]) for f in folds) == [4, 4, 5, 5, 5]
    same = kfold_indices(23, k=5, seed=1)
    assert all(np.array_equal(a["val"], b["val"]) for a, b in zip(folds, same))
    assert any(not np.array_equal(a["val"], b["val"]) for a, b in zip(folds, kfold_indices(23, k=5, seed=2)))
    summary = cross_validate(lambda f: {"size": float(len(f["val"]))}, folds)
    assert summary["size"] == pytest.approx(23 / 5) and summary["size_std"] > 0
    with pytest.raises(ValueError, match="k: expected between 2 and 3, got 4"):
        kfold_indices(3, k=4)


def test_kfold_stratifies_class_labels():
    labels = np.array([0] * 40 + [1] * 10 + [2] * 25)
    folds = kfold_indices(len(labels), k=5, seed=0, labels=labels)
    assert sorted(np.concatenate([f["val"] for f in folds]).tolist()) == list(range(len(labels)))
    for fold in folds:  # each class split as evenly as the counts allow: 8, 2 and 5 per fold
        assert np.bincount(labels[fold["val"]], minlength=3).tolist() == [8, 2, 5]
    with pytest.raises(ValueError, match="labels: expected class labels to stratify by, got continuous"):
        kfold_indices(10, k=2, labels=np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="labels: expected 10 entries"):
        kfold_indices(10, k=2, labels=[0, 1])


def test_grid_search_over_trainer_settings(chembl_loaders):
    graphs = chembl_loaders[0].dataset
    folds = kfold_indices(len(graphs), k=2)

    def objective(params):
        def run(fold):
            trainer = Trainer(build("naive_gnn"), max_epochs=1, lr=params["lr"], progress=False, groups=[])
            trainer.fit(DataLoader([graphs[i] for i in fold["train"]], batch_size=32))
            return {"rmse": trainer.evaluate(DataLoader([graphs[i] for i in fold["val"]], batch_size=64))["rmse"]}

        return cross_validate(run, folds)

    result = grid_search(objective, {"lr": [1e-4, 1e-2]}, "rmse")
    assert len(result.trials) == 2 and "rmse_std" in result.best.metrics


def test_optuna_is_optional(monkeypatch):
    real_import = builtins.__import__

    def no_optuna(name, *args, **kwargs):
        if name == "optuna":
            raise ImportError("no optuna here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_optuna)
    with pytest.raises(ImportError, match=r"pip install 'geoadapt\[optuna\]'"):
        optuna_search(lambda p: {"loss": 0.0}, {"x": ("float", 0, 1)}, "loss")
