"""The data kinds geoadapt acts on: PyG graphs (``Data`` / ``Batch``), point clouds ``(B, N, 3)``, images
``(B, C, H, W)``; how many samples a batch holds and which graph each node belongs to."""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

GraphData = Union[Data, Batch]  # noqa: UP007 (a runtime alias)
AnyData = Union[Data, Batch, Tensor]  # noqa: UP007 (a runtime alias)

# Keys that PyG itself manages on a Batch; never treated as fields.
BOOKKEEPING = ("batch", "ptr", "num_nodes")
LEVELS = ("node", "edge", "graph")
# Fields of a periodic system, one row per graph: ``cell`` (1, 3, 3) Å, ``pbc`` (1, 3) bool, ``stress`` (1, 3, 3)
# eV/Å³. Where rows alone cannot tell (a 1-atom crystal has as many cells as atoms) they are graph fields.
GRAPH_FIELDS = ("cell", "pbc", "stress")


def is_graph(data: object) -> bool:
    """True for a PyG ``Data`` or ``Batch``."""
    return isinstance(data, Data)


def is_point_cloud(data: object) -> bool:
    """True for a tensor of points ``(B, N, 3)``."""
    return isinstance(data, Tensor) and data.dim() == 3


def is_image(data: object) -> bool:
    """True for an image tensor ``(B, C, H, W)``."""
    return isinstance(data, Tensor) and data.dim() == 4


def is_index_field(key: str) -> bool:
    """Fields that hold node indices by PyG's default ``Data.__inc__`` (``*index*`` and ``face``), shaped ``(k, E)``."""
    return "index" in key or key == "face"


def num_graphs(data: AnyData) -> int:
    """Number of graphs (or samples, for tensors) in ``data``."""
    if isinstance(data, Tensor):
        return data.shape[0]
    if isinstance(data, Batch):
        return int(data.num_graphs)
    batch = getattr(data, "batch", None)
    if batch is not None:
        return int(batch.max()) + 1 if batch.numel() else 0
    return 1


def graph_index(data: GraphData) -> Tensor:
    """Graph id of every node, ``(num_nodes,)`` (all zeros for a single ``Data``)."""
    batch = getattr(data, "batch", None)
    if batch is not None:
        return batch
    device = data.edge_index.device if data.edge_index is not None else None
    return torch.zeros(data.num_nodes, dtype=torch.long, device=device)


def to_dtype(data: AnyData, dtype: torch.dtype) -> AnyData:
    """A copy of ``data`` with every floating tensor cast to ``dtype`` (index tensors untouched)."""
    if isinstance(data, Tensor):
        return data.to(dtype) if data.is_floating_point() else data
    out = data.clone()
    for key in out.keys():
        value = out[key]
        if isinstance(value, Tensor) and value.is_floating_point():
            out[key] = value.to(dtype)
    return out
