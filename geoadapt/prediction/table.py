"""Predictions as a table: one row per input predicted, the inputs that could not be featurized beside them.

Columns (:meth:`Predictions.columns`, the header of the CSV file ``geoadapt predict`` writes):

- ``row`` (the input's row in its source), ``id`` (with an id column), ``smiles`` (molecules);
- regression: ``prediction`` (``prediction_<i>`` for several outputs), in target units; potentials: ``energy``
  (eV); classifiers: ``probability`` (of class 1; ``probability_<k>`` per class for several) and ``label``;
- ``target`` (``target_<i>``) when the source has targets;
- with the equivariance error: ``equivariance_error`` (relative to the targets' spread, for regression with a
  target scaler) or ``equivariance_abs`` (output units: logits, eV), and for classifiers ``consistency``;
- with the symmetrized value: ``symmetrized`` (``symmetrized_energy``; classifiers ``symmetrized_probability`` and
  ``symmetrized_label``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from geoadapt.tasks import Task


@dataclass
class Failure:
    """An input that could not be featurized: its row, id and SMILES, and why (``parse``, ``embed``, ``empty``)."""

    row: int
    smiles: str | None
    reason: str
    key: str | None = None


def _named(base: str, count: int) -> list[str]:
    return [base] if count == 1 else [f"{base}_{i}" for i in range(count)]


def _block(names: list[str], values: Tensor) -> dict[str, list[str]]:
    """Columns ``names`` of ``values`` ``(n, len(names))``, each number as the shortest text that reads back to the
    same number in its dtype (float32 outputs stay short, float64 ones exact)."""
    array = values.detach().cpu().numpy().reshape(values.shape[0], len(names))
    return {name: [str(v) for v in array[:, j]] for j, name in enumerate(names)}


@dataclass
class Predictions:
    """Predictions of a model on some inputs, in target units.

    Attributes:
        task: the task answered (a :class:`~geoadapt.tasks.Task`: ``.name`` is ``"regression"``,
            ``"classification"``, ``"potential"`` or a task of your own); it says what a prediction reports.
        rows: the input row of each prediction (a list of ``n`` ints).
        outputs: ``(n, dim)``: regression values in target units, classifier logits, or energies (eV).
        keys, smiles: the id and SMILES of each prediction, when the inputs have them.
        targets: ``(n, T)`` targets from the source (``NaN`` for an empty cell), or ``None``.
        error: ``(n,)`` each prediction's equivariance error (mean over its transformed copies), or ``None``;
            ``relative_error``: whether it is relative to the targets' spread (else in output units).
        consistency: ``(n,)`` classifiers: the share of transformed copies that keep the predicted class.
        symmetrized: ``(n, dim)`` the symmetrized outputs (same units as ``outputs``), or ``None``.
        forces: potentials: one ``(atoms, 3)`` tensor (eV/Å) per prediction, when asked for.
        failed: the inputs that could not be featurized (never left out silently).
        target_names: the names of the targets.
        group: the group of ``error`` and ``symmetrized`` (its ``repr``), when they were asked for.
        symmetrized_by: how ``symmetrized`` averages (frames, parity, or the transformed copies).
    """

    task: Task
    rows: list[int]
    outputs: Tensor
    keys: list[str] | None = None
    smiles: list[str | None] | None = None
    targets: Tensor | None = None
    error: Tensor | None = None
    relative_error: bool = False
    consistency: Tensor | None = None
    symmetrized: Tensor | None = None
    forces: list[Tensor] | None = None
    failed: list[Failure] = field(default_factory=list)
    target_names: list[str] = field(default_factory=list)
    group: str | None = None
    symmetrized_by: str | None = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def values(self) -> Tensor:
        """``(n, dim)``: target units (regression), energies (potentials) or class probabilities (classifiers):
        :meth:`~geoadapt.tasks.Task.prediction_values` of the outputs."""
        return self.task.prediction_values(self.outputs)

    @property
    def labels(self) -> Tensor | None:
        """``(n,)`` predicted classes (classifiers; decided as everywhere in geoadapt), else ``None``."""
        return self.task.prediction_labels(self.outputs)

    def metrics(self) -> dict[str, float]:
        """The task metrics against the targets (rows with a missing target left out), ``{}`` without targets.

        The task's metrics (:meth:`~geoadapt.tasks.Task.prediction_metrics`), as ``Trainer.evaluate`` computes them.
        """
        return task_metrics(self.task, self.outputs, self.targets)

    def columns(self) -> dict[str, list[object]]:
        """The table, column by column (see the module docstring for the names); numbers as text."""
        table: dict[str, list[object]] = {"row": list(self.rows)}
        if self.keys is not None:
            table["id"] = list(self.keys)
        if self.smiles is not None:
            table["smiles"] = list(self.smiles)
        table.update(_value_columns(self.task, self.outputs, ""))
        if self.targets is not None:
            table.update(_block(_named("target", self.targets.shape[1]), self.targets))
        if self.error is not None:
            name = "equivariance_error" if self.relative_error else "equivariance_abs"
            table.update(_block([name], self.error))
        if self.consistency is not None:
            table.update(_block(["consistency"], self.consistency))
        if self.symmetrized is not None:
            table.update(_value_columns(self.task, self.symmetrized, "symmetrized"))
        return table


def _value_columns(task: Task, outputs: Tensor, prefix: str) -> dict[str, list[object]]:
    """The columns of outputs: what the task reports of them (values in target units, energies, or a classifier's
    probabilities) and, for tasks that predict classes, the label."""
    labels = task.prediction_labels(outputs)
    # Classes: probabilities from float64 logits, so that a probability near 0 or 1 keeps its digits in the file.
    values = task.prediction_values(outputs.double() if labels is not None else outputs)
    base = f"{prefix}_{task.prediction_column}" if prefix else task.prediction_column
    columns: dict[str, list[object]] = dict(_block(_named(base, values.shape[1]), values))
    if labels is not None:
        columns[f"{prefix}_label" if prefix else "label"] = labels.tolist()
    return columns


def task_metrics(task: Task, outputs: Tensor, targets: Tensor | None) -> dict[str, float]:
    """Task metrics of ``outputs`` (the predictor's) against ``targets``; rows with a NaN target left out."""
    if targets is None or targets.numel() == 0:
        return {}
    known = torch.isfinite(targets.double()).all(1)
    if not bool(known.any()):
        return {}
    return {**task.prediction_metrics(outputs[known], targets[known]), "rows": int(known.sum())}


def concat(parts: list[Predictions]) -> Predictions:
    """One table of several (chunks of the same run, in order)."""
    if not parts:
        raise ValueError("parts: expected at least one table of predictions, got none")
    first = parts[0]

    def cat(name: str) -> Tensor | None:
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else torch.cat(values)

    def first_set(name: str) -> str | None:
        return next((getattr(p, name) for p in parts if getattr(p, name)), None)

    def join(name: str) -> list | None:
        values = [getattr(p, name) for p in parts]
        return None if any(v is None for v in values) else [x for v in values for x in v]

    return Predictions(
        first.task, join("rows"), cat("outputs"), join("keys"), join("smiles"), cat("targets"), cat("error"),
        first.relative_error, cat("consistency"), cat("symmetrized"), join("forces"),
        [f for p in parts for f in p.failed], first.target_names,
        first_set("group"), first_set("symmetrized_by"),
    )  # fmt: skip
