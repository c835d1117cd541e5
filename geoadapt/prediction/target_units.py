"""A model's answers in target units, and the task it answers: the one place that decides both.

Every consumer of predictions (``geoadapt.predict``, ``geoadapt predict``, ``geoadapt evaluate``) asks
:func:`resolve_predictor` and nothing else, and it asks the task object what the Trainer asks
(:meth:`~geoadapt.tasks.Task.predictor` of the network, after :meth:`~geoadapt.tasks.Task.bind`), so that a model
answers the same everywhere, ``Trainer.evaluate`` included.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from geoadapt.models.predictor import network_of
from geoadapt.spec import Spec
from geoadapt.tasks import Task, make_task


@dataclass
class TargetPredictor:
    """A model whose ``forward`` answers in target units.

    Attributes:
        module: ``module(batch)`` is ``(graphs, spec.output.dim)``: regression values in target units,
            classifier logits (one: binary; several: one per class), or energies in eV (potentials).
        task: the task it answers (a :class:`~geoadapt.tasks.Task`, bound to the model).
        spec: the Spec of ``module``'s inputs and output.
        scale: block scales ``(n_blocks,)`` the relative equivariance error divides by
            (:meth:`~geoadapt.tasks.Task.equivariance_scale`: the targets' spread, for regression with a target
            scaler); ``None`` where there is no fixed scale (errors stay in output units).
        network: the network itself (``module`` wraps it when there is a target scaler).
    """

    module: nn.Module
    task: Task
    spec: Spec
    scale: Tensor | None
    network: nn.Module


def recorded_task(model: nn.Module) -> str | None:
    """The task a checkpoint records (``model.checkpoint["extra"]["task"]``), or ``None``."""
    extra = (getattr(model, "checkpoint", None) or {}).get("extra") or {}
    task = extra.get("task")
    return task if isinstance(task, str) else None


def resolve_predictor(model: nn.Module, task: Task | str | None = None) -> TargetPredictor:
    """The predictor in target units of ``model`` and its task, bound to it.

    Args:
        model: a loaded checkpoint (a :class:`~geoadapt.models.Predictor` when it carries a target scaler), a
            trained network (its ``target_scaler`` recorded by the Trainer) or any model with a ``spec``.
        task: the task it answers (a registered name or a :class:`~geoadapt.tasks.Task`); default the task its
            checkpoint records, else ``"regression"``. A task that contradicts the recorded one is a ``ValueError``.
    """
    spec = getattr(model, "spec", None)
    if not isinstance(spec, Spec):
        raise TypeError(f"model: expected a model with a geoadapt Spec (model.spec), got {type(spec).__name__}")
    recorded = recorded_task(model)
    name = task.name if isinstance(task, Task) else task
    if name is not None and recorded is not None and name != recorded:
        raise ValueError(f"task: expected {recorded!r} (the task the checkpoint records), got {name!r}")
    resolved = make_task(task if task is not None else recorded or "regression")
    network = network_of(model)
    resolved.bind(model, spec)
    return TargetPredictor(resolved.predictor(network), resolved, spec, resolved.equivariance_scale(), network)
