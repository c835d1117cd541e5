"""Pretraining: train a named backbone on a source dataset (optionally with augmentation) and save it.

:func:`pretrain` and ``geoadapt pretrain`` are one pipeline: the same splits (:func:`source_splits`), the same
Trainer and loaders (:func:`fit_pretraining`), the same defaults (:mod:`geoadapt.defaults`) and the same record
in the checkpoint (:func:`pretraining_record`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch_geometric.loader import DataLoader

from geoadapt import defaults
from geoadapt.checkpoints import save
from geoadapt.errors import ConfigError
from geoadapt.groups import Group, group_from_name
from geoadapt.models import build
from geoadapt.tasks import Task
from geoadapt.train.from_config import trainer_from_config
from geoadapt.train.trainer import Trainer


def loader_for(dataset: Any, batch_size: int, shuffle: bool) -> Any:
    """A PyG loader for graph datasets, a plain torch loader of ``(image, label)`` for image datasets."""
    if hasattr(dataset, "images"):
        return torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=shuffle)
    graphs = dataset.graphs if hasattr(dataset, "graphs") else dataset
    return DataLoader(graphs, batch_size=batch_size, shuffle=shuffle)


def source_splits(
    card: str | Mapping[str, Any],
    limit: int | None = None,
    progress: bool | None = None,
    label: str | None = None,
    splits: tuple[str, ...] = ("train", "val"),
) -> tuple[Any, ...]:
    """The ``splits`` of a dataset card (a name, or a card such as ``csv_card`` makes), in that order.

    ``limit`` (the first rows) applies to molecule sets only; ``label`` names the data in errors (default: the
    card's name). An empty split is an error, not an empty epoch.
    """
    from geoadapt.data import load, read_card

    card = read_card(card) if isinstance(card, str) else card
    molecules = card["kind"] in ("molecules_csv", "rdkit")
    if limit is not None and not molecules:
        raise ConfigError(f"limit: only molecule sets take a limit, got limit={limit} for {card['name']}")
    options = {"limit": limit, "progress": progress} if molecules else {}
    parts = tuple(load(card, split=split, **options) for split in splits)
    for split, part in zip(splits, parts):
        if len(part) == 0:
            shown = label or card["name"]
            hint = "; split=train measures the training rows" if split != "train" else ""
            raise ConfigError(f"data {shown}: expected rows in the {split} split, got none (too few rows{hint})")
    return parts


def fit_pretraining(
    model: nn.Module,
    train: Any,
    val: Any | None,
    task: Task | str,
    epochs: int = defaults.PRETRAIN_EPOCHS,
    lr: float = defaults.LEARNING_RATE,
    batch_size: int = defaults.BATCH_SIZE,
    augment: Group | str | None = None,
    seed: int = defaults.SEED,
    progress: bool | None = None,
    **trainer_options: Any,
) -> Trainer:
    """Fit ``model`` on ``train`` (validated on ``val`` each epoch when given) and return the fitted Trainer.

    ``augment``: a group (or name) to train with, one random element per sample per step; without one the
    Trainer measures the group it infers from the data. ``trainer_options`` go to the Trainer (``run_dir``,
    ``device``, ...).
    """
    config = {"epochs": epochs, "lr": lr, "seed": seed, "progress": progress, "augment": augment}
    trainer = trainer_from_config(model, config, task, **trainer_options)
    trainer.fit(
        loader_for(train, batch_size, True),
        loader_for(val, defaults.EVAL_BATCH_SIZE, False) if val is not None else None,
    )
    return trainer


def pretraining_record(task: Task | str, augment: Group | str | None, epochs: int) -> dict[str, Any]:
    """What a pretrained checkpoint records of its training (``extra``): task (its registered name), augmentation
    group, epochs."""
    group = group_from_name(augment) if isinstance(augment, str) else augment
    return {
        "task": task.name if isinstance(task, Task) else task,
        "augment": repr(group) if group is not None else None,
        "epochs": epochs,
    }


def pretrain(
    model: str | nn.Module,
    dataset: str | Mapping[str, Any] | Any,
    checkpoint: str | os.PathLike | None = None,
    task: Task | str | None = None,
    epochs: int = defaults.PRETRAIN_EPOCHS,
    lr: float = defaults.LEARNING_RATE,
    batch_size: int = defaults.BATCH_SIZE,
    augment: Group | str | None = None,
    seed: int = defaults.SEED,
    limit: int | None = None,
    model_config: dict[str, Any] | None = None,
    progress: bool | None = None,
    **trainer_options: Any,
) -> tuple[nn.Module, dict[str, float]]:
    """Train ``model`` (a registry name or a built backbone) on ``dataset``'s train split; save a checkpoint.

    Args:
        dataset: a dataset card name (``"rdkit_nci5k"``), a card, or a dataset object with train data.
        augment: a group (or name, e.g. ``"so3"``) to augment with: one random element per sample per step.
        limit: use only the first ``limit`` molecules of a named molecule set (quick runs).

    Returns:
        The trained model and its validation metrics (training metrics when there is no validation split).
    """
    if isinstance(dataset, (str, Mapping)):
        from geoadapt.data import read_card

        card = read_card(dataset) if isinstance(dataset, str) else dataset
        name, task = dataset if isinstance(dataset, str) else card["name"], task or card["task"]
        train, val = source_splits(card, limit, progress)
    else:
        name, train, val = getattr(dataset, "name", type(dataset).__name__), dataset, None
        task = task or getattr(dataset, "task", "regression")
    torch.manual_seed(seed)
    net = build(model, **(model_config or {})) if isinstance(model, str) else model
    trainer = fit_pretraining(net, train, val, task, epochs, lr, batch_size, augment, seed, progress, **trainer_options)
    metrics = trainer.evaluate(loader_for(val if val is not None else train, defaults.EVAL_BATCH_SIZE, False))
    if checkpoint is not None:
        Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
        record = pretraining_record(trainer.task, augment, epochs)
        save(trainer.predictor(), checkpoint, dataset=name, metrics=metrics, extra=record)
    return net, metrics
