"""Invariant edge sets built from coordinates."""

from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import to_dense_batch


def refuse_periodic(data: object, model: str) -> None:
    """Raise ``ValueError`` when ``data`` is a periodic system (``pbc`` true along any axis, or a ``cell``
    without ``pbc``): these edges ignore periodic images, so the model would answer for a different structure."""
    pbc, cell = getattr(data, "pbc", None), getattr(data, "cell", None)
    if pbc is not None:
        flags = torch.as_tensor(pbc, dtype=torch.bool).reshape(-1, 3)
        periodic = flags.any(dim=-1)
    elif cell is not None:
        periodic = torch.as_tensor(cell).reshape(-1, 9).abs().sum(dim=-1) > 0
    else:
        return
    if bool(periodic.any()):
        first = int(periodic.nonzero()[0])
        shown = "a cell without pbc" if pbc is None else f"pbc={flags[first].tolist()}"
        raise ValueError(
            f"{model}: expected a non-periodic system (molecule in vacuum, pbc all False), got {shown} in graph "
            f"{first}: its neighbour graph has no periodic images, so it would answer for another structure"
        )


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


def knn_edges(features: Tensor, batch: Tensor, k: int) -> Tensor:
    """Directed edges ``(2, E)`` from each node's ``k`` nearest other nodes of its graph (by ``features``).

    A pure-torch stand-in for PyG's ``knn_graph`` (which needs the compiled pyg-lib): dense per-graph
    distances, padding pushed to infinity, ``topk``. Graphs with fewer than ``k + 1`` nodes use all nodes.
    """
    dense, mask = to_dense_batch(features, batch)
    dist = torch.cdist(dense, dense)
    n_max = dense.shape[1]
    invalid = ~(mask[:, :, None] & mask[:, None, :]) | torch.eye(n_max, dtype=torch.bool, device=features.device)
    dist = dist.masked_fill(invalid, float("inf"))
    k_eff = min(k, max(n_max - 1, 1))
    values, neighbors = dist.topk(k_eff, dim=-1, largest=False)
    valid = torch.isfinite(values) & mask[:, :, None]
    b, i, slot = valid.nonzero(as_tuple=True)
    counts = mask.sum(1)
    offsets = torch.cumsum(counts, 0) - counts
    return torch.stack([offsets[b] + neighbors[b, i, slot], offsets[b] + i])
