"""Run folders: resolved config, metrics, summary, checkpoints and plots, published only on success."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml


@contextmanager
def run_folder(path: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Work in ``<path>.partial``; rename it to ``path`` only when the block succeeds.

    A failed run leaves no folder that looks finished: its partial folder is removed.
    """
    final = Path(path)
    if final.exists() and not overwrite:
        raise ValueError(f"out: expected a new run folder, got existing {final} (pass overwrite=true)")
    partial = final.with_name(final.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    partial.rename(final)


def write_config(folder: Path, config: dict[str, Any]) -> None:
    """``config.yaml``: the fully resolved configuration of the run."""
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def write_summary(folder: Path, summary: dict[str, Any]) -> None:
    """``summary.json``: final metrics and provenance (written last)."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
    (folder / "summary.json").write_text(json.dumps(clean, indent=2, default=str))


def plot_history(
    folder: Path,
    history: list[dict[str, float]],
    angles: list[float] | None = None,
    angle_errors: list[float] | None = None,
) -> list[Path]:
    """PNG plots: loss curves, validation metrics, equivariance error per epoch, error vs rotation angle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    epochs = [row["epoch"] for row in history]

    def figure(name: str, keys: list[str], ylabel: str, log: bool = False) -> None:
        present = [k for k in keys if any(k in row for row in history)]
        if not present:
            return
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for key in present:
            ax.plot(epochs, [row.get(key, math.nan) for row in history], marker="o", ms=3, label=key)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(folder / name, dpi=110)
        plt.close(fig)
        made.append(folder / name)

    figure("loss.png", ["train_loss", "train_task_loss"], "loss")
    figure("metrics.png", ["val_rmse", "val_mae", "val_accuracy", "val_f1"], "validation metric")
    eq_keys = sorted({k for row in history for k in row if k.startswith("val_equivariance_error")})
    if any("/" in k for k in eq_keys):  # with several groups the plain key repeats the first group
        eq_keys = [k for k in eq_keys if "/" in k]
    figure("equivariance_error.png", eq_keys, "relative equivariance error", log=True)
    if angles is not None and angle_errors is not None:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot([math.degrees(a) for a in angles], angle_errors, marker="o", ms=3)
        ax.set_xlabel("rotation about z (degrees)")
        ax.set_ylabel("relative error")
        fig.tight_layout()
        fig.savefig(folder / "error_vs_angle.png", dpi=110)
        plt.close(fig)
        made.append(folder / "error_vs_angle.png")
    return made
