"""Figures of training runs: per-epoch curves of the history and equivariance error against rotation angle.

Every function takes plain inputs (history rows as the Trainer writes them to ``metrics.csv`` /
``history.json``, lists of numbers) and returns matplotlib figures, so a run folder, the demo and a user's own
loop draw the same plots. Matplotlib runs headless (``Agg``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ANGLE_AXIS = "rotation about z (degrees)"
FIGURE_SIZE = (5, 3.2)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves_figure(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    ylabel: str,
    title: str | None = None,
    log: bool = False,
    whole_x: bool = False,
    legend: bool = True,
    what: str | None = None,
) -> Any:
    """One axis with a line per entry of ``curves`` (label -> (x values, y values)); ``whole_x`` puts ticks on
    whole numbers only (epochs); ``log`` a log-scaled y axis. The heading is ``"<title>: <what>"`` (``what``
    defaults to the y label)."""
    from matplotlib.ticker import MaxNLocator

    fig, ax = _pyplot().subplots(figsize=FIGURE_SIZE)
    for label, (xs, ys) in curves.items():
        ax.plot(list(xs), list(ys), marker="o", ms=3, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if whole_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if log:
        ax.set_yscale("log")
    if legend:
        ax.legend(fontsize=7)
    what = what or ylabel
    ax.set_title(f"{title}: {what}" if title else what, fontsize=9)
    fig.tight_layout()
    return fig


def epoch_curves(history: Sequence[Mapping[str, float]], keys: Sequence[str]) -> dict[str, tuple[list, list]]:
    """Each of ``keys`` per epoch of ``history`` (rows with an ``epoch``): key -> (epochs, values), NaN where a
    row lacks the key."""
    epochs = [int(row["epoch"]) for row in history]
    return {key: (epochs, [row.get(key, math.nan) for row in history]) for key in keys}


def angle_error_label(relative_to: str) -> str:
    """The y label of an error-vs-angle plot: what the error is and what it is relative to."""
    return f"equivariance error\n(relative to {relative_to})"


def error_vs_angle_figure(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    relative_to: str,
    title: str | None = None,
    log: bool = False,
) -> Any:
    """Equivariance error against the rotation angle about z: label -> (angles in radians, mean relative errors),
    as :func:`geoadapt.metrics.error_vs_angle` returns them; ``relative_to`` says what scale the errors divide by
    (e.g. ``"the targets' spread"``) and goes into the y label."""
    in_degrees = {k: ([math.degrees(a) for a in xs], ys) for k, (xs, ys) in curves.items()}
    what = "equivariance error vs rotation angle"
    ylabel = angle_error_label(relative_to)
    return curves_figure(in_degrees, ANGLE_AXIS, ylabel, title, log, legend=len(curves) > 1, what=what)


def history_figures(
    history: Sequence[Mapping[str, float]],
    angles: Sequence[float] | None = None,
    angle_errors: Sequence[float] | None = None,
    title: str | None = None,
    relative_to: str = "the targets' spread",
) -> dict[str, Any]:
    """Figures by file name: ``loss.png``, ``metrics.png`` (validation metrics), ``equivariance_error.png`` (per
    epoch and group) from the history rows, and ``error_vs_angle.png`` when ``angles`` (radians) and their errors
    are given. ``title`` (the run's name) heads every plot; epochs are whole numbers on the x axis."""
    figures: dict[str, Any] = {}

    def per_epoch(name: str, keys: Sequence[str], ylabel: str, log: bool = False) -> None:
        present = [k for k in keys if any(k in row for row in history)]
        if present:
            figures[name] = curves_figure(epoch_curves(history, present), "epoch", ylabel, title, log, whole_x=True)

    per_epoch("loss.png", ["train_loss", "train_task_loss"], "loss")
    per_epoch("metrics.png", ["val_rmse", "val_mae", "val_accuracy", "val_f1"], "validation metric")
    eq_keys = sorted({k for row in history for k in row if k.startswith("val_equivariance_error")})
    if any("/" in k for k in eq_keys):  # with several groups the plain key repeats the first group
        eq_keys = [k for k in eq_keys if "/" in k]
    per_epoch("equivariance_error.png", eq_keys, "relative equivariance error", log=True)
    if angles is not None and angle_errors is not None:
        figures["error_vs_angle.png"] = error_vs_angle_figure({"": (angles, angle_errors)}, relative_to, title)
    return figures


def save_figures(folder: str | Path, figures: Mapping[str, Any], dpi: int = 110) -> list[Path]:
    """Write each figure to ``folder/<name>`` (PNG) and close it; returns the paths."""
    plt = _pyplot()
    made = []
    for name, fig in figures.items():
        fig.savefig(Path(folder) / name, dpi=dpi)
        plt.close(fig)
        made.append(Path(folder) / name)
    return made
