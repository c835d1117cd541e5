"""Distances between ``f(g·x)`` and ``ρ(g) f(x)``, averaged per sample (graph)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor
from torch_geometric.utils import scatter

DISTANCES = ("mse", "relative", "kl")


def per_sample_distance(kind: str, moved: Tensor, expected: Tensor, row_graph: Tensor, num_graphs: int) -> Tensor:
    """``d(f(g·x), ρ(g) f(x))`` per graph: ``(num_graphs,)``.

    ``mse``: mean squared difference per row, summed over a graph's rows (nodes) and divided by their
    count; ``relative``: ``||diff||^2 / (||ρ f(x)||^2 + eps)`` per graph; ``kl``: ``KL(p(x) || p(g·x))``
    between the softmax of invariant logits.
    """
    if kind not in DISTANCES:
        raise ValueError(f"distance: expected one of {DISTANCES}, got {kind!r}")
    if kind == "kl":
        per_row = F.kl_div(F.log_softmax(moved, -1), F.log_softmax(expected, -1), reduction="none", log_target=True)
        per_row = per_row.sum(-1)
        return scatter(per_row, row_graph, dim=0, dim_size=num_graphs, reduce="mean")
    squared = (moved - expected).pow(2).reshape(moved.shape[0], -1)
    if kind == "mse":
        return scatter(squared.mean(-1), row_graph, dim=0, dim_size=num_graphs, reduce="mean")
    num = scatter(squared.sum(-1), row_graph, dim=0, dim_size=num_graphs, reduce="sum")
    den = scatter(
        expected.pow(2).reshape(moved.shape[0], -1).sum(-1), row_graph, dim=0, dim_size=num_graphs, reduce="sum"
    )
    return num / (den + 1e-8)
