"""Divergences between the predictive distributions of two sets of classifier logits (softmax, or a Bernoulli
for one logit), per row."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def _log_probs(logits: Tensor) -> Tensor:
    """Log class probabilities of logits ``(rows, C)``: softmax, or a Bernoulli ``[1 - σ, σ]`` for one logit."""
    if logits.shape[-1] == 1:
        logits = torch.cat([torch.zeros_like(logits), logits], -1)
    return F.log_softmax(logits, -1)


def kl_logits(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """``KL(p || q)`` per row for logits ``(rows, C)``: categorical for ``C > 1``, Bernoulli for ``C == 1``."""
    log_p, log_q = _log_probs(p_logits), _log_probs(q_logits)
    return (log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0)  # >= 0; round-off gives -1e-9 for p == q


def js_logits(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """Jensen-Shannon divergence per row, ``(rows,)``: symmetric, bounded by ``ln 2``, zero iff ``p == q``."""
    log_p, log_q = _log_probs(p_logits), _log_probs(q_logits)
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), 0) - torch.log(torch.tensor(2.0, dtype=log_p.dtype))
    js = 0.5 * ((log_p.exp() * (log_p - log_m)).sum(-1) + (log_q.exp() * (log_q - log_m)).sum(-1))
    return js.clamp_min(0)  # >= 0; round-off gives -1e-9 for p == q
