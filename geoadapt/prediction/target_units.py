"""A model's answers in target units, and the kind of task it answers: the one place that decides both.

Every consumer of predictions (``geoadapt.predict``, ``geoadapt predict``, ``geoadapt evaluate``) asks
:func:`resolve_predictor` and nothing else, so that a model answers the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from geoadapt.spec import Spec
from geoadapt.train.targets import Denormalized, target_scale

TASK_KINDS = ("regression", "classification", "potential")
_FROM_MODEL: Any = object()  # normalization not given: read the model's own (``model.normalization``)


@dataclass
class TargetPredictor:
    """A model whose ``forward`` answers in target units.

    Attributes:
        module: ``module(batch)`` is ``(graphs, spec.output.dim)``: regression values in target units,
            classifier logits (one: binary; several: one per class), or energies in eV (potentials).
        task: ``"regression"``, ``"classification"`` or ``"potential"``.
        spec: the Spec of ``module``'s inputs and output.
        scale: block scales ``(n_blocks,)`` the relative equivariance error divides by (the targets' spread, for
            regression with a target scaler); ``None`` where there is no fixed scale (errors stay in output units).
        model: the network itself (``module`` wraps it).
    """

    module: nn.Module
    task: str
    spec: Spec
    scale: Tensor | None
    model: nn.Module


def recorded_task(model: nn.Module) -> str | None:
    """The task a checkpoint records (``model.checkpoint["extra"]["task"]``), or ``None``."""
    extra = (getattr(model, "checkpoint", None) or {}).get("extra") or {}
    task = extra.get("task")
    return task if task in TASK_KINDS else None


def resolve_predictor(
    model: nn.Module, task: str | None = None, normalization: dict[str, list[float]] | None = _FROM_MODEL
) -> TargetPredictor:
    """The predictor in target units of ``model`` and its task.

    Args:
        model: a loaded checkpoint, a built model or any model with a ``spec``.
        task: the task it answers; default the task its checkpoint records, else ``"regression"``. A task that
            contradicts the recorded one is a ``ValueError``.
        normalization: the target scaler of a regression model (``{"mean": [...], "std": [...]}``; ``None``:
            the model already answers in target units); default the model's own (``model.normalization``).

    Today a regression checkpoint answers standardized values and carries its scaler: the predictor is the network
    followed by the scaler's inverse (:class:`~geoadapt.train.targets.Denormalized`), as ``Trainer.predictor()``.
    """
    spec = getattr(model, "spec", None)
    if not isinstance(spec, Spec):
        raise TypeError(f"model: expected a model with a geoadapt Spec (model.spec), got {type(spec).__name__}")
    recorded = recorded_task(model)
    if task is not None and task not in TASK_KINDS:
        raise ValueError(f"task: expected one of {list(TASK_KINDS)}, got {task!r}")
    if task is not None and recorded is not None and task != recorded:
        raise ValueError(f"task: expected {recorded!r} (the task the checkpoint records), got {task!r}")
    task = task or recorded or "regression"
    if normalization is _FROM_MODEL:
        normalization = getattr(model, "normalization", None)
    if task != "regression" or normalization is None:
        return TargetPredictor(model, task, spec, None, model)
    return TargetPredictor(Denormalized(model, normalization), task, spec, target_scale(normalization, spec), model)
