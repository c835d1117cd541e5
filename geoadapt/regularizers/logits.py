"""The classifier's penalty: the change of its logits relative to their spread across samples.

A classifier's prediction is read from its logits up to a common shift (softmax) and its ranking up to a common
scale (ROC-AUC), so the penalty compares *class-centred* logits and divides by their between-sample variance,
with that variance in the graph: ``d = mean_c (Δz_c - mean Δz)^2 / Var_x(z - mean_c z)``. Nothing but a more
invariant ranking lowers it. A divergence between predicted probabilities (Jensen-Shannon:
``≈ p(1 - p) Δz^2 / 8`` for one logit) can also be lowered by pushing ``p`` to 0 or 1; a squared logit difference
by shrinking the logits towards their offset, which moves every prediction to the class of that offset; a
variance held fixed keeps that shrinking push. This one is unchanged by a shift or a scale of the logits, so it
pushes towards neither.
"""

from __future__ import annotations

import torch
from torch import Tensor

from geoadapt.equivariance import Comparison

SPREAD_FLOOR = 1e-6  # logits that do not vary across samples: compare in their own units rather than divide by 0


def centred(logits: Tensor) -> Tensor:
    """Class-centred logits ``(rows, C)``: ``z - mean_c z`` (one logit: unchanged, its class 0 is fixed at 0)."""
    return logits if logits.shape[-1] == 1 else logits - logits.mean(-1, keepdim=True)


def logit_spread(fx: Tensor) -> Tensor:
    """The between-sample variance of the class-centred logits ``(rows, C)``: a differentiable scalar, at least
    ``SPREAD_FLOOR``."""
    z = centred(fx.reshape(fx.shape[0], -1))
    if z.shape[0] < 2:
        return z.new_tensor(1.0)
    return (z - z.mean(0, keepdim=True)).pow(2).mean().clamp_min(SPREAD_FLOOR)


def standardized_logit_distance(comparison: Comparison, spread: Tensor) -> Tensor:
    """Per copy and sample, ``(K, B)``: the mean squared change of the class-centred logits divided by ``spread``
    (:func:`logit_spread` of the batch's logits)."""
    diff = centred(comparison.fgx - comparison.expected).pow(2).mean(-1)
    n = comparison.copies * comparison.samples
    sums = diff.new_zeros(n).index_add(0, comparison.row_graph, diff)
    counts = torch.bincount(comparison.row_graph, minlength=n).clamp_min(1).to(diff.dtype)
    return (sums / counts).reshape(comparison.copies, comparison.samples) / spread
