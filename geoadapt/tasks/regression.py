"""Regression: MSE on standardized targets; metrics (MSE, MAE, RMSE, R²) in target units."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geoadapt.equivariance import output_rows
from geoadapt.metrics.task import regression_metrics
from geoadapt.models.predictor import scaler_of
from geoadapt.models.scalers import Standardize
from geoadapt.spec import Spec
from geoadapt.structure import AnyData
from geoadapt.tasks.base import Pair, Task
from geoadapt.tasks.registry import register_task


@register_task
class Regression(Task):
    """Graph or node regression with scalar or vector targets (``batch.y``, ``(rows, spec.output.dim)``).

    The network trains on standardized targets (:class:`~geoadapt.models.Standardize`, fitted on the training
    targets of the task being trained; vector targets share one scale, so equivariance survives); the predictor
    (:meth:`predictor`), the metrics and the equivariance errors are in target units.

    Args:
        normalize_targets: train on standardized targets (``False``: on the raw targets, no scaler).
        keep_normalization: keep the scaler the model carries (a loaded :class:`~geoadapt.models.Predictor`'s,
            e.g. the source task's) instead of fitting one on this task's training targets (the default: a model
            adapted to a new task is trained on that task's scale).
    """

    name = "regression"
    default_distance = "mse"
    headline_metric = "rmse"
    higher_is_better = Task.higher_is_better | {"r2"}

    def __init__(self, normalize_targets: bool = True, keep_normalization: bool = False) -> None:
        super().__init__()
        if keep_normalization and not normalize_targets:
            raise ValueError(
                "keep_normalization: expected normalize_targets=True beside it, got normalize_targets=False"
            )
        self.normalize_targets, self.keep_normalization = bool(normalize_targets), bool(keep_normalization)
        self.fitted = False  # the scaler was fitted on (or kept for) this task's training data

    def bind(self, model: nn.Module, spec: Spec) -> None:
        """Start from the scaler ``model`` carries (so evaluating before training answers in its units)."""
        super().bind(model, spec)
        self.scaler = scaler_of(model) if self.normalize_targets else None
        if self.keep_normalization:
            if self.scaler is None:
                raise ValueError(
                    "keep_normalization: expected a model that carries a target scaler (a loaded Predictor, or "
                    "model.target_scaler), got None"
                )
            self.fitted = True

    def prepare(self, loader: Iterable) -> None:
        """Fit the standardization on every training target (once; a resumed run restores its own)."""
        if self.normalize_targets and not self.fitted:
            spec = self._bound_spec()
            targets = torch.cat([self._columns(self.split(b)[1], spec).double() for b in loader])
            self.scaler, self.fitted = Standardize.fit(targets, spec), True

    @staticmethod
    def _columns(targets: Tensor, spec: Spec) -> Tensor:
        """Targets as ``(rows, spec.output.dim)``; one ``ValueError`` when they do not split into such rows."""
        dim = spec.output.dim
        if targets.numel() % dim:
            raise ValueError(
                f"targets: expected {dim} values per row for the Spec output {spec.output}, got shape "
                f"{tuple(targets.shape)}"
            )
        return targets.reshape(-1, dim)

    def output_columns(self, inputs: AnyData, targets: Any, num_classes: int | None = None) -> int | None:
        """One column per target of multi-target graph-level data."""
        rows = getattr(inputs, "num_graphs", -1)
        if targets.dim() == 2 and targets.shape[-1] > 1 and targets.shape[0] == rows:
            return int(targets.shape[-1])
        return None

    def loss(self, view: nn.Module, out: Tensor, targets: Any, inputs: AnyData) -> Tensor:
        """MSE of ``out`` against the scaled targets."""
        out = output_rows(out, self._bound_spec())
        target = targets.to(out.dtype)
        if self.scaler is not None:
            target = self.scaler.scale(target)
        return F.mse_loss(out.reshape(target.shape), target)

    def metrics(self, predictor: nn.Module, batches: Sequence[Pair]) -> dict[str, float]:
        """MSE, MAE, RMSE and R² of the predictions in target units."""
        spec = self._bound_spec()
        out = torch.cat([output_rows(predictor(inputs), spec) for inputs, _ in batches])
        y = torch.cat([targets for _, targets in batches])
        return regression_metrics(out, y.reshape(out.shape[0], -1))

    def equivariance_scale(self) -> Tensor | None:
        """The targets' spread per output block (:meth:`~geoadapt.models.Standardize.block_scale`)."""
        block_scale = getattr(self.scaler, "block_scale", None)
        return block_scale(self._bound_spec()) if block_scale is not None else None

    def scale_description(self) -> str:
        return "the targets' spread" if self.equivariance_scale() is not None else "the outputs' spread"

    def load_state(self, state: Mapping[str, Any]) -> None:
        super().load_state(state)
        self.fitted = self.scaler is not None or not self.normalize_targets

    def __repr__(self) -> str:
        return f"Regression(normalize_targets={self.normalize_targets}, keep_normalization={self.keep_normalization})"
