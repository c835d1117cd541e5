"""The scale of the relative error: block scales ``s_j`` from the spread of the outputs, or one given by the user."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from e3nn import o3
from torch import Tensor


class OutputScale:
    """Running statistics of ``f(x)`` for the block scales ``s_j`` (float64 sums, pooled over batches)."""

    def __init__(self, irreps: o3.Irreps) -> None:
        self.irreps = irreps
        self.rows = 0
        self.total: Tensor | None = None
        self.total_sq: Tensor | None = None
        self.dtype = torch.float32

    def add(self, fx: Tensor) -> OutputScale:
        """Add the rows of ``f(x)`` ``(rows, dim)``; returns ``self``."""
        rows = fx.detach().reshape(-1, self.irreps.dim).to(torch.float64)
        total, total_sq = rows.sum(0), rows.pow(2).sum(0)
        self.total = total if self.total is None else self.total + total
        self.total_sq = total_sq if self.total_sq is None else self.total_sq + total_sq
        self.rows += rows.shape[0]
        self.dtype = fx.dtype
        return self

    def value(self) -> Tensor:
        """``s_j`` per block, ``(n_blocks,)`` float64 (see :mod:`geoadapt.equivariance`)."""
        if self.total is None or self.rows == 0:
            raise ValueError("output scale: expected at least one output row, got none")
        mean, mean_sq = self.total / self.rows, self.total_sq / self.rows
        scales = []
        for (_mul, ir), sl in zip(self.irreps, self.irreps.slices()):
            if ir.l == 0 and ir.p == 1 and self.rows > 1:
                var = (mean_sq[sl] - mean[sl].pow(2)).clamp_min(0).mean()
            else:
                var = mean_sq[sl].mean()
            scales.append(var.sqrt())
        floor = torch.finfo(self.dtype).eps ** 0.5 if self.dtype.is_floating_point else 0.0
        return torch.stack(scales).clamp_min(floor)


def block_scale(fx: Tensor, irreps: o3.Irreps) -> Tensor:
    """``s_j`` of one set of outputs ``(rows, dim)``: ``(n_blocks,)``."""
    return OutputScale(irreps).add(fx).value()


def as_scale(scale: Tensor | float | Sequence[float], irreps: o3.Irreps) -> Tensor:
    """A user scale (one number, or one per block) as ``(n_blocks,)`` float64."""
    value = torch.as_tensor(scale, dtype=torch.float64).reshape(-1)
    if value.numel() == 1:
        value = value.expand(len(irreps))
    if value.numel() != len(irreps) or bool((value <= 0).any()):
        raise ValueError(
            f"scale: expected one positive number or one per output block ({len(irreps)}: {irreps}), got {scale}"
        )
    return value
