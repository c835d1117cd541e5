"""Errors of a potential on labelled graphs, and forgetting: the errors against the frozen source model.

:func:`potential_errors` gives the mean absolute errors of energy (meV/atom), forces (meV/Å) and, where the
labels have them, stress (meV/Å³) of any geoadapt energy model: the potential task's metrics
(:func:`geoadapt.tasks.potential_terms.potential_metrics`) with forces in meV/Å, the unit of the tables.
:func:`forgetting` is the same measurement on structures like the pretraining data
(:func:`geoadapt.data.source_like.source_like_structures`) labelled by the source model before adaptation
(:func:`geoadapt.train.replay.pseudolabel`): how far adaptation moved the model on what it knew. The source model
scores 0 on its own labels, so every number is a change. During training, ``Potential(forgetting=...)`` puts the
same errors in the Trainer's metrics (``val_forgetting_*``, in the task's units).
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn
from torch_geometric.data import Data

from geoadapt.tasks.potential_terms import MEV, labelled_batches, potential_metrics


def potential_errors(model: nn.Module, graphs: Sequence[Data], batch_size: int = 16) -> dict[str, float]:
    """Mean absolute errors of ``model`` on labelled ``graphs`` (``energy``, ``force``, optionally ``stress``).

    Returns ``energy_mae`` (meV/atom), ``force_mae`` (meV/Å, per component), ``force_rmse`` (meV/Å) and, when every
    graph has a stress label, ``stress_mae`` (meV/Å³, per component of the 3x3 tensor). Positions and cells are cast
    to the model's dtype; the model runs in evaluation mode and is left in the mode it was in.
    """
    batches = labelled_batches(model, graphs, batch_size)
    was_training = model.training
    model.eval()
    try:
        metrics = potential_metrics(model, batches)
    finally:
        model.train(was_training)
    out = {
        "energy_mae": metrics["energy_mae"],
        "force_mae": metrics["force_mae"] * MEV,
        "force_rmse": metrics["force_rmse"] * MEV,
    }
    if "stress_mae" in metrics:
        out["stress_mae"] = metrics["stress_mae"]
    return out


def forgetting(model: nn.Module, pseudolabelled: Sequence[Data], batch_size: int = 16) -> dict[str, float]:
    """How far ``model`` moved from the source model on structures the source model labelled
    (:func:`geoadapt.train.replay.pseudolabel`, before adaptation): :func:`potential_errors` against those labels.

    Keys ``energy_mae`` (meV/atom), ``force_mae`` and ``force_rmse`` (meV/Å) and, for crystals labelled with stress,
    ``stress_mae`` (meV/Å³).
    """
    return potential_errors(model, pseudolabelled, batch_size)
