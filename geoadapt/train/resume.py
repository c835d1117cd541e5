"""The Trainer's resumable state: weights, optimizer, scheduler, regularizers, task, RNGs, epoch, history.

Everything in it is tensors and plain data, so ``last.pt`` / ``best.pt`` read back with ``weights_only``.
"""

from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from geoadapt.serialization import atomic_save, safe_load

if TYPE_CHECKING:
    from geoadapt.train.trainer import Trainer

log = logging.getLogger("geoadapt")


def _numpy_rng_state() -> list:
    """NumPy's global RNG state as plain data (its key array as a list)."""
    name, keys, *rest = np.random.get_state()
    return [name, keys.tolist(), *rest]


def trainer_state(trainer: Trainer) -> dict[str, Any]:
    """Everything needed to resume ``trainer`` where it is."""
    return {
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict() if trainer.optimizer else None,
        "scheduler": trainer.scheduler.state_dict() if trainer.scheduler is not None else None,
        "regularizers": trainer.regularizers.state_dict(),
        "epoch": trainer.epoch,
        "global_step": trainer.global_step,
        "history": trainer.history,
        "warnings": trainer.warnings,
        "forecast_misses": sorted(trainer._forecast_misses),
        "task": trainer.task.state(),
        "best": trainer.stopping.best,
        "best_epoch": trainer.stopping.best_epoch,
        "scaler": trainer.grad_scaler.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state(), "python": random.getstate()},
    }


def save_state(trainer: Trainer, name: str) -> None:
    """Write the state to ``run_dir/name`` atomically (nothing without a run folder)."""
    if trainer.run_dir is not None:
        atomic_save(trainer_state(trainer), trainer.run_dir / name)


def load_state(trainer: Trainer, path: Path) -> None:
    """Restore ``trainer`` from the state at ``path`` (a state written by :func:`save_state`)."""
    state = safe_load(path, "resume state", "start the run afresh (resume=false) if you did not write it")
    trainer.model.load_state_dict(state["model"])
    trainer.optimizer.load_state_dict(state["optimizer"])
    if trainer.scheduler is not None and state["scheduler"] is not None:
        trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.regularizers.load_state_dict(state["regularizers"])
    trainer.epoch, trainer.history = state["epoch"], state["history"]
    trainer.warnings, trainer._forecast_misses = state.get("warnings", []), set(state.get("forecast_misses", []))
    # Resume states of earlier versions hold the regression standardization as "normalization".
    old = state.get("normalization")
    trainer.task.load_state(state.get("task") or {"scaler": {"kind": "standardize", "state": old} if old else None})
    trainer.global_step = state.get("global_step", 0)
    trainer.stopping.best, trainer.stopping.best_epoch = state["best"], state["best_epoch"]
    if state.get("scaler"):
        trainer.grad_scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    name, keys, *rest = state["rng"]["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
    random.setstate(state["rng"]["python"])
    log.info("resumed from %s at epoch %d", path, trainer.epoch)
