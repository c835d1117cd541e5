"""The Trainer's optimization, schedule and stopping settings as one checked value, and what it builds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

SCHEDULERS = (None, "cosine", "step", "plateau")


@dataclass(frozen=True)
class TrainingOptions:
    """How the Trainer optimizes (AdamW), schedules the learning rate and stops.

    Attributes:
        max_epochs, lr, weight_decay, grad_clip, seed: the usual (``grad_clip``: max gradient norm, ``None`` off).
        scheduler: ``None``, ``"cosine"``, ``"step"`` or ``"plateau"``; ``scheduler_options`` go to the torch
            scheduler (e.g. ``{"step_size": 50, "gamma": 0.5}`` for ``"step"``).
        early_stopping: a validation metric name (e.g. ``"rmse"``, ``"accuracy"``) and ``patience`` epochs.
        eq_samples: group samples per graph for the per-epoch equivariance metrics.
        stack: regularizer copies in the batch's forward (``True``), in their own (``False``) or as the model says.
    """

    max_epochs: int = 50
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    grad_clip: float | None = 10.0
    scheduler: str | None = None
    scheduler_options: Mapping[str, Any] = field(default_factory=dict)
    early_stopping: str | None = None
    patience: int = 10
    eq_samples: int = 4
    stack: bool | None = None

    def __post_init__(self) -> None:
        if self.scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler: expected one of {SCHEDULERS}, got {self.scheduler!r}")
        object.__setattr__(self, "max_epochs", int(self.max_epochs))
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "scheduler_options", dict(self.scheduler_options or {}))


def make_optimizer(groups: Sequence[dict], options: TrainingOptions) -> torch.optim.Optimizer:
    """AdamW over the parameter ``groups``; ``ValueError`` when nothing trains."""
    if not groups:
        raise ValueError("optimizer: expected trainable parameters, got none (everything is frozen)")
    return torch.optim.AdamW(list(groups), lr=options.lr, weight_decay=options.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, options: TrainingOptions) -> Any:
    """The learning-rate scheduler ``options.scheduler`` names (``None`` for none), with its options."""
    schedulers = {
        "cosine": (torch.optim.lr_scheduler.CosineAnnealingLR, {"T_max": max(options.max_epochs, 1)}),
        "step": (torch.optim.lr_scheduler.StepLR, {"step_size": max(options.max_epochs // 3, 1)}),
        "plateau": (torch.optim.lr_scheduler.ReduceLROnPlateau, {"patience": max(options.patience // 2, 1)}),
    }
    if options.scheduler is None:
        return None
    make, defaults = schedulers[options.scheduler]
    try:
        return make(optimizer, **{**defaults, **options.scheduler_options})
    except TypeError as error:
        raise ValueError(
            f"scheduler_options: expected keyword arguments of {make.__name__}, "
            f"got {sorted(options.scheduler_options)} ({error})"
        ) from None


def step_scheduler(scheduler: Any, options: TrainingOptions, row: Mapping[str, float]) -> None:
    """Advance the scheduler after an epoch (``plateau``: on the early-stopping metric, else the training loss)."""
    if scheduler is None:
        return
    if options.scheduler == "plateau":
        scheduler.step(row.get(f"val_{options.early_stopping}", row["train_loss"]))
    else:
        scheduler.step()
