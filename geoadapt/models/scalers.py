"""Target scalers: what a network is trained on (scaled targets) and how its outputs go back to target units.

A scaler is a small object with plain-data state (lists of floats), so a checkpoint stores it as
``{"kind": <registered name>, "state": {...}}`` and :func:`scaler_from_record` rebuilds it by name, running no code
from the file. :class:`Standardize` is the regression task's; a task of your own registers its scaler class with
:func:`register_scaler`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor

from geoadapt.spec import Spec

SCALERS: dict[str, type] = {}


@runtime_checkable
class TargetScaler(Protocol):
    """Maps targets to the scale a network trains on (``scale``) and its outputs back (``unscale``).

    ``state()`` is plain data (numbers, lists, strings) and ``from_state(state)`` rebuilds the scaler from it;
    ``kind`` is the name it is registered under (:func:`register_scaler`); ``describe()`` says in words what
    ``unscale`` does to a network's outputs.
    """

    kind: ClassVar[str]

    def scale(self, y: Tensor) -> Tensor: ...

    def unscale(self, y: Tensor) -> Tensor: ...

    def state(self) -> dict[str, Any]: ...

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> TargetScaler: ...

    def describe(self) -> str: ...


def register_scaler(cls: type) -> type:
    """Class decorator: make a :class:`TargetScaler` class rebuildable by its ``kind`` (checkpoints name it)."""
    kind = getattr(cls, "kind", "")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"scaler class {cls.__name__}: expected a non-empty string 'kind', got {kind!r}")
    SCALERS[kind] = cls
    return cls


def scaler_record(scaler: TargetScaler | None) -> dict[str, Any] | None:
    """``{"kind", "state"}`` of ``scaler`` (plain data, as checkpoints store it), or ``None``."""
    if scaler is None:
        return None
    if not isinstance(scaler, TargetScaler) or type(scaler).kind not in SCALERS:
        raise TypeError(
            f"target scaler: expected a TargetScaler registered with geoadapt.models.register_scaler, "
            f"got {type(scaler).__name__}"
        )
    return {"kind": type(scaler).kind, "state": scaler.state()}


def scaler_from_record(record: Mapping[str, Any] | None) -> TargetScaler | None:
    """The scaler a :func:`scaler_record` describes (``None`` for ``None``)."""
    if record is None:
        return None
    kind = record.get("kind")
    if kind not in SCALERS:
        raise ValueError(f"target scaler kind: expected one of {sorted(SCALERS)}, got {kind!r}")
    return SCALERS[kind].from_state(record["state"])


@register_scaler
@dataclass
class Standardize:
    """``(y - mean) / std`` per column; ``unscale`` is ``y * std + mean`` (target units from standardized outputs).

    :meth:`fit` gives invariant outputs (all ``0e``) a mean and std per column; equivariant outputs keep mean 0
    and share one scale (the RMS of the entries), since a per-component shift or scale would break equivariance.
    """

    kind: ClassVar[str] = "standardize"
    mean: list[float] = field(default_factory=list)
    std: list[float] = field(default_factory=list)

    @classmethod
    def fit(cls, targets: Tensor, spec: Spec) -> Standardize:
        """Fitted on ``targets`` ``(rows, spec.output.dim)`` (float64); ``ValueError`` for NaN or infinite rows."""
        ys = targets.double()
        bad = int((~torch.isfinite(ys)).any(1).sum())
        if bad:
            raise ValueError(
                f"targets: expected finite regression targets, got {bad} training rows with NaN or infinite values "
                "(drop them when loading; geoadapt.data.from_csv does and counts them)"
            )
        if all(ir.l == 0 and ir.p == 1 for _, ir in spec.output):
            mean, std = ys.mean(0), ys.std(0).clamp_min(1e-8) if ys.shape[0] > 1 else torch.ones(ys.shape[1])
        else:
            mean, std = torch.zeros(ys.shape[1]), ys.pow(2).mean().sqrt().clamp_min(1e-8).expand(ys.shape[1])
        return cls(mean.tolist(), std.tolist())

    def _tensors(self, like: Tensor) -> tuple[Tensor, Tensor]:
        mean = torch.tensor(self.mean, dtype=like.dtype, device=like.device)
        return mean, torch.tensor(self.std, dtype=like.dtype, device=like.device)

    def scale(self, y: Tensor) -> Tensor:
        """``(y - mean) / std``, as ``(rows, columns)``."""
        mean, std = self._tensors(y)
        return (y.reshape(y.shape[0], -1) - mean) / std

    def unscale(self, y: Tensor) -> Tensor:
        """``y * std + mean``: target units."""
        mean, std = self._tensors(y)
        return y * std + mean

    def state(self) -> dict[str, list[float]]:
        """``{"mean": [...], "std": [...]}``."""
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Standardize:
        """From :meth:`state` (also the ``normalization`` entry of checkpoints of format 3 and earlier)."""
        return cls([float(v) for v in state["mean"]], [float(v) for v in state["std"]])

    def block_scale(self, spec: Spec) -> Tensor | None:
        """The targets' spread per output block (RMS of the column stds of the block), ``(n_blocks,)``; ``None``
        when the columns do not match ``spec``. Regression measures equivariance errors relative to it: a fixed
        denominator from the data, so errors compare between epochs and methods."""
        std = torch.tensor(self.std, dtype=torch.float64)
        if std.numel() != spec.output.dim:
            return None
        return torch.stack([std[sl].pow(2).mean().sqrt() for sl in spec.output.slices()])

    def describe(self) -> str:
        """What :meth:`unscale` does, in words."""
        return f"network output * std + mean, per column ({len(self.mean)} column(s))"
