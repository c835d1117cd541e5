"""What a run writes to its folder: ``metrics.csv`` and ``history.json`` each epoch, the plots at the end.

The plots are :func:`geoadapt.plots.history_figures` of the history plus the error-vs-angle curve measured here,
the same for ``Trainer(run_dir=...)`` and the command line's run folders.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from geoadapt.train.trainer import Trainer

ANGLES = 13  # 0 to 180 degrees about z; 0 is exact by definition and left out
ANGLE_BATCHES = 2  # validation batches the curve is measured on


def write_history(folder: Path, history: Sequence[Mapping[str, float]]) -> None:
    """``metrics.csv`` (one row per epoch, NaN where a row lacks a key) and ``history.json``, written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for r in history for k in r}, key=lambda k: (k != "epoch", k))
    tmp = folder / ".metrics.csv.tmp"
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        for r in history:
            writer.writerow({k: r.get(k, math.nan) for k in keys})
    tmp.replace(folder / "metrics.csv")
    tmp = folder / ".history.json.tmp"
    tmp.write_text(json.dumps(list(history), indent=1))
    tmp.replace(folder / "history.json")


def error_by_angle(trainer: Trainer, loader: Iterable | None) -> tuple[list[float] | None, list[float] | None, str]:
    """Angles about z (radians, 15° to 180°), the equivariance error of the trainer's predictions at each on the
    first batches of ``loader``, and what the error is relative to (the task says: the targets' spread for
    regression, the outputs' for classifiers, the forces' for potentials). ``None`` curves when nothing in the
    data rotates (images, no positions, no loader): the curve would be zero by construction."""
    from geoadapt.devices import to_device
    from geoadapt.metrics import error_vs_angle
    from geoadapt.structure import concat

    relative_to = trainer.task.scale_description()
    if loader is None or hasattr(getattr(loader, "dataset", None), "images"):
        return None, None, relative_to
    batches = [trainer.task.split(b)[0] for b, _ in zip(loader, range(ANGLE_BATCHES))]
    if not batches or not hasattr(batches[0], "num_graphs"):
        return None, None, relative_to
    sample = concat(batches)
    if not (trainer.spec.positions and all(sample.get(p) is not None for p in trainer.spec.positions)):
        return None, None, relative_to
    angles = torch.linspace(0, math.pi, ANGLES)[1:]
    view = trainer.task.view(trainer.predictor())
    scale = trainer.task.equivariance_scale()
    errors = error_vs_angle(view, to_device(sample, trainer.device), trainer.task.output_spec, angles, scale)
    trainer.model.train()
    return angles.tolist(), errors.tolist(), relative_to


def write_figures(trainer: Trainer, loader: Iterable | None, folder: Path, title: str) -> dict[str, float]:
    """Write the run's plots to ``folder`` (loss, validation metrics, equivariance per epoch, error vs angle);
    returns the error-vs-angle curve as ``{degrees: error}`` (empty when nothing rotates)."""
    from geoadapt.plots import history_figures, save_figures

    with torch.random.fork_rng(devices=[]):  # iterating a loader draws from the global RNG: keep it as it was
        angles, errors, relative_to = error_by_angle(trainer, loader)
    figures = history_figures(trainer.history, angles, errors, title=title, relative_to=relative_to)
    save_figures(folder, figures)
    if not errors:
        return {}
    return dict(zip([round(math.degrees(a)) for a in angles], errors))
