"""Invariant edge sets built from coordinates."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch


def radius_edges(pos: Tensor, batch: Tensor, cutoff: float) -> Tensor:
    """Directed edges ``(2, E)`` between distinct nodes of the same graph closer than ``cutoff``.

    Written with a dense per-graph distance matrix (``to_dense_batch`` + ``cdist``) so that no compiled
    extension (torch-cluster) is needed; molecules are small, so ``B * N_max^2`` stays cheap.
    The edge set depends only on distances: it is E(3) invariant and permutation equivariant.
    """
    dense, mask = to_dense_batch(pos, batch)
    dist = torch.cdist(dense, dense)
    n_max = dense.shape[1]
    adj = (dist < cutoff) & mask[:, :, None] & mask[:, None, :]
    adj &= ~torch.eye(n_max, dtype=torch.bool, device=pos.device)
    b, i, j = adj.nonzero(as_tuple=True)
    counts = mask.sum(1)
    offsets = torch.cumsum(counts, 0) - counts
    return torch.stack([offsets[b] + j, offsets[b] + i])  # messages flow source j -> target i
