"""Pretraining: train a named backbone on a source dataset (optionally with augmentation) and save it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch_geometric.loader import DataLoader

from geoadapt.groups import Group, group_from_name
from geoadapt.models import build, save
from geoadapt.train.trainer import Trainer


def loader_for(dataset: Any, batch_size: int, shuffle: bool) -> Any:
    """A PyG loader for graph datasets, a plain torch loader of ``(image, label)`` for image datasets."""
    if hasattr(dataset, "images"):
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle)
    graphs = dataset.graphs if hasattr(dataset, "graphs") else dataset
    return DataLoader(graphs, batch_size=batch_size, shuffle=shuffle)


def pretrain(
    model: str | nn.Module,
    dataset: str | Any,
    checkpoint: str | os.PathLike | None = None,
    task: str | None = None,
    epochs: int = 20,
    lr: float = 1e-3,
    batch_size: int = 32,
    augment: Group | str | None = None,
    seed: int = 0,
    limit: int | None = None,
    model_config: dict[str, Any] | None = None,
    progress: bool | None = None,
    **trainer_options: Any,
) -> tuple[nn.Module, dict[str, float]]:
    """Train ``model`` (a registry name or a built backbone) on ``dataset``'s train split; save a checkpoint.

    Args:
        dataset: a dataset card name (``"rdkit_nci5k"``) or a dataset object with train data.
        augment: a group (or name, e.g. ``"so3"``) to augment with: one random element per sample per step.
        limit: use only the first ``limit`` molecules of a named molecule set (quick runs).

    Returns:
        The trained model and its validation metrics (training metrics when there is no validation split).
    """
    from geoadapt.data import load, read_card

    name = dataset if isinstance(dataset, str) else getattr(dataset, "name", type(dataset).__name__)
    options = {"limit": limit, "progress": progress} if isinstance(dataset, str) and limit is not None else {}
    if isinstance(dataset, str):
        card = read_card(dataset)
        task = task or card["task"]
        if card["kind"] in ("molecules_csv", "rdkit"):
            options.setdefault("progress", progress)
        train = load(dataset, split="train", **options)
        val = load(dataset, split="val", **options)
    else:
        train, val = dataset, None
        task = task or getattr(dataset, "task", "regression")
    torch.manual_seed(seed)
    net = build(model, **(model_config or {})) if isinstance(model, str) else model
    if isinstance(augment, str):
        augment = group_from_name(augment)
    trainer = Trainer(
        net,
        task,
        strategy="augment" if augment is not None else None,
        groups=[augment] if augment is not None else [],
        max_epochs=epochs,
        lr=lr,
        seed=seed,
        progress=progress,
        **trainer_options,
    )
    trainer.fit(loader_for(train, batch_size, True), loader_for(val, 256, False) if val is not None else None)
    metrics = trainer.evaluate(loader_for(val if val is not None else train, 256, False))
    if checkpoint is not None:
        Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
        save(
            net,
            checkpoint,
            normalization=trainer.normalization,
            dataset=name,
            metrics=metrics,
            extra={"task": task, "augment": repr(augment) if augment is not None else None, "epochs": epochs},
        )
    return net, metrics
