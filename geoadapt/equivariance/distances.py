"""The distances a penalty takes between ``f(g·x)`` and ``ρ_out(g) f(x)``: mean squared difference, squared
relative error, and KL / Jensen-Shannon divergences between predictive distributions."""

from __future__ import annotations

import torch
from torch import Tensor

from geoadapt.equivariance.comparison import Comparison, block_dims, relative_from_squared
from geoadapt.equivariance.scale import block_scale

DISTANCES = ("mse", "relative", "kl", "js")


def distance(kind: str, comparison: Comparison, scale: Tensor | None = None) -> Tensor:
    """Per copy and sample distance ``d(f(g·x), ρ(g) f(x))``, ``(K, B)``, differentiable.

    ``mse``: mean squared difference over a sample's rows and components; ``relative``: ``r^2`` with the
    block scales of the compared outputs (held fixed: gradients never widen the scale); ``kl``:
    ``KL(p(x) || p(g·x))`` and ``js`` (Jensen-Shannon) between predictive distributions (classifier logits:
    softmax, or Bernoulli for one logit).
    """
    if kind == "kl":
        return comparison.kl_divergence()
    if kind == "js":
        return comparison.js_divergence()
    squared = comparison.squared_error()
    if kind == "mse":
        dims = torch.tensor(block_dims(comparison.irreps), dtype=squared.dtype, device=squared.device)
        return (squared * dims).sum(-1) / dims.sum()
    if kind == "relative":
        scale = block_scale(comparison.fx, comparison.irreps) if scale is None else scale
        return relative_from_squared(squared, scale, comparison.irreps).pow(2)
    raise ValueError(f"distance: expected one of {DISTANCES}, got {kind!r}")
