"""Data shared by the classifier benchmarks: molecule sets as binary classification tasks."""

from __future__ import annotations

from pathlib import Path

import torch

import geoadapt
from geoadapt.data import load


def binary_parts(target: str, limit: int | None) -> list[list]:
    """Train, val and test graphs of ``target`` as a binary task: a classification set as it is, a regression set
    made binary at the median of its training targets (label 1 above it). Graphs are copies: the cache is intact."""
    parts = [load(target, split=s, limit=limit, progress=False) for s in ("train", "val", "test")]
    graphs = [[g.clone() for g in part] for part in parts]
    if parts[0].task == "classification":
        return graphs
    threshold = torch.cat([g.y.reshape(-1) for g in graphs[0]]).median()
    for part in graphs:
        for g in part:
            g.y = (g.y > threshold).float()
    return graphs


def pretrained_checkpoint(out_dir: Path, molecules: int = 4999, epochs: int = 30) -> Path:
    """The naive GNN pretrained on rdkit's NCI molecules with SO(3) augmentation, as benchmarks/molecular_adaptation.py
    makes it (made here when ``out_dir`` does not hold it)."""
    path = out_dir / f"pretrained_naive_gnn_nci{molecules}_{epochs}.pt"
    if not path.is_file():
        geoadapt.pretrain(
            "naive_gnn", "rdkit_nci5k", path, epochs=epochs, limit=molecules, lr=3e-3, batch_size=64, augment="so3",
            seed=0, progress=False,
        )  # fmt: skip
    return path


def within(value: float, reference: float, std: float) -> bool:
    """``value`` (higher is better) is not below ``reference`` by more than ``std``."""
    return value >= reference - max(std, 1e-12)


def promise_check(row: dict, plain: dict, metric: str = "roc_auc") -> dict:
    """The promise of a method's summary ``row`` against plain training's: its metric on given and on moved test data
    within plain's std or better (``kept``), and its error cut."""
    given = within(row[metric], plain[metric], plain[f"{metric}_std"])
    moved = within(row[f"moved_{metric}"], plain[f"moved_{metric}"], plain[f"moved_{metric}_std"])
    cut = plain["equivariance_error"] / max(row["equivariance_error"], 1e-300)
    return {"given_kept": given, "moved_kept": moved, "kept": given and moved, "error_cut": cut}
