"""Batches as (input, target) pairs, and target standardization that respects equivariant outputs."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from geoadapt.spec import Spec
from geoadapt.structure import AnyData, is_graph


def split_batch(batch: object) -> tuple[AnyData, Tensor]:
    """``(inputs, targets)`` from a PyG batch (``batch.y``) or an ``(inputs, targets)`` tuple."""
    if is_graph(batch):
        if getattr(batch, "y", None) is None:
            raise ValueError("batch.y: expected targets on the graph batch, got None")
        return batch, batch.y
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(f"batch: expected a PyG Batch with y or an (inputs, targets) pair, got {type(batch).__name__}")


def fit_normalization(loader: Iterable, spec: Spec) -> dict[str, list[float]]:
    """Mean and std of the regression targets of ``loader``.

    Invariant outputs (all ``0e``) get per-column mean and std. Equivariant outputs keep mean 0 and share
    one scale (the RMS of the entries), since a per-component shift or scale would break equivariance.
    """
    ys = torch.cat([split_batch(b)[1].reshape(-1, spec.output.dim).double() for b in loader])
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
    return {"mean": mean.tolist(), "std": std.tolist()}


def normalize(y: Tensor, normalization: dict[str, list[float]] | None) -> Tensor:
    """``(y - mean) / std`` (identity when ``normalization`` is None)."""
    if normalization is None:
        return y
    mean = torch.tensor(normalization["mean"], dtype=y.dtype, device=y.device)
    std = torch.tensor(normalization["std"], dtype=y.dtype, device=y.device)
    return (y.reshape(y.shape[0], -1) - mean) / std


def denormalize(y: Tensor, normalization: dict[str, list[float]] | None) -> Tensor:
    """Inverse of :func:`normalize`."""
    if normalization is None:
        return y
    mean = torch.tensor(normalization["mean"], dtype=y.dtype, device=y.device)
    std = torch.tensor(normalization["std"], dtype=y.dtype, device=y.device)
    return y * std + mean


def target_scale(normalization: dict[str, list[float]] | None, spec: Spec) -> Tensor | None:
    """The targets' spread per output block (RMS of the column stds of the block), ``(n_blocks,)``, or ``None``.

    Regression measures equivariance errors relative to it: a fixed denominator from the data, so errors
    are comparable between epochs and methods, whatever the spread of the predictions.
    """
    if normalization is None:
        return None
    std = torch.tensor(normalization["std"], dtype=torch.float64)
    if std.numel() != spec.output.dim:
        return None
    return torch.stack([std[sl].pow(2).mean().sqrt() for sl in spec.output.slices()])


class Denormalized(torch.nn.Module):
    """``model`` followed by de-standardization: predictions in target units (identity without normalization)."""

    def __init__(self, model: torch.nn.Module, normalization: dict[str, list[float]] | None) -> None:
        super().__init__()
        self.model, self.normalization = model, normalization

    def forward(self, inputs: object) -> Tensor:
        return denormalize(self.model(inputs), self.normalization)
