"""Layout of the data kinds geoadapt acts on: PyG graphs, point clouds ``(B, N, 3)``, images ``(B, C, H, W)``.

One place decides which rows of a PyG field belong to nodes, edges or graphs, and how to stack
copies of a batch into one batch (for a single forward pass over many transformed copies).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Union

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

if TYPE_CHECKING:
    from geoadapt.spec import Spec

GraphData = Union[Data, Batch]  # noqa: UP007 (a runtime alias)
AnyData = Union[Data, Batch, Tensor]  # noqa: UP007 (a runtime alias)

# Keys that PyG itself manages on a Batch; never treated as fields.
_BOOKKEEPING = ("batch", "ptr", "num_nodes")


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
    """Fields that hold node indices (PyG's convention: ``*index*`` and ``face``), shaped ``(k, E)``."""
    return "index" in key or key == "face"


def num_graphs(data: AnyData) -> int:
    """Number of graphs (or samples, for tensors) in ``data``."""
    if isinstance(data, Tensor):
        return data.shape[0]
    if isinstance(data, Batch) or getattr(data, "batch", None) is not None:
        return int(data.num_graphs)
    return 1


def graph_index(data: GraphData) -> Tensor:
    """Graph id of every node, ``(num_nodes,)`` (all zeros for a single ``Data``)."""
    batch = getattr(data, "batch", None)
    if batch is not None:
        return batch
    device = data.edge_index.device if data.edge_index is not None else None
    return torch.zeros(data.num_nodes, dtype=torch.long, device=device)


def field_level(data: GraphData, key: str, spec: Spec | None = None) -> str:
    """``"node"``, ``"edge"`` or ``"graph"``: the level of field ``key`` in ``data``.

    An explicit ``spec.levels[key]`` wins; otherwise the row count is matched against the number of
    nodes, edges and graphs (in that order; an ``edge`` in the name prefers edges).
    """
    if spec is not None and key in spec.levels:
        return spec.levels[key]
    value = data[key]
    rows = value.shape[0] if isinstance(value, Tensor) and value.dim() > 0 else len(value)
    n_edges = data.edge_index.shape[1] if getattr(data, "edge_index", None) is not None else -1
    return _level_of_rows(key, rows, data.num_nodes, n_edges, num_graphs(data))


def _level_of_rows(key: str, rows: int, n_nodes: int, n_edges: int, n_graphs: int) -> str:
    """The rule of :func:`field_level` on counts already known (callers looping over fields count once)."""
    if "edge" in key and rows == n_edges:
        return "edge"
    if rows == n_nodes:
        return "node"
    if rows == n_edges:
        return "edge"
    if rows == n_graphs:
        return "graph"
    raise ValueError(
        f"field {key!r}: expected {n_nodes} rows (nodes), {n_edges} (edges) or {n_graphs} (graphs), got {rows}"
    )


def row_graph(data: GraphData, level: str) -> Tensor:
    """Graph id of every row of a field at ``level``: ``(rows,)``."""
    if level == "node":
        return graph_index(data)
    if level == "edge":
        return graph_index(data)[data.edge_index[0]]
    return torch.arange(num_graphs(data), device=graph_index(data).device)


def concat(items: Sequence[AnyData]) -> AnyData:
    """Stack several graphs / batches into one ``Batch`` (graphs keep their order), or tensors on dim 0.

    Unlike ``Batch.from_data_list`` this works on whole batches with a handful of tensor ops, so
    K transformed copies of a batch cost one concatenation per field, not a Python loop over graphs.
    """
    first = items[0]
    if isinstance(first, Tensor):
        return torch.cat(list(items), dim=0)
    node_counts = torch.tensor([d.num_nodes for d in items])
    graph_counts = [num_graphs(d) for d in items]
    node_offsets = torch.cumsum(node_counts, 0) - node_counts
    out: dict[str, object] = {}
    batches = []
    for i, d in enumerate(items):
        batches.append(graph_index(d) + sum(graph_counts[:i]))
    for key in first.keys():
        if key in _BOOKKEEPING:
            continue
        values = [d[key] for d in items]
        if not isinstance(values[0], Tensor):
            merged: list = []
            for d, v in zip(items, values):
                merged.extend(v if isinstance(v, list) and num_graphs(d) > 1 else [v])
            out[key] = merged
        elif is_index_field(key):
            out[key] = torch.cat([v + int(o) for v, o in zip(values, node_offsets)], dim=-1)
        elif values[0].dim() == 0:
            out[key] = values[0]
        else:
            out[key] = torch.cat(values, dim=0)
    batch = torch.cat(batches)
    counts = torch.bincount(batch, minlength=sum(graph_counts))
    ptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
    result = Batch(batch=batch, ptr=ptr, **out)
    result._num_graphs = sum(graph_counts)
    result.num_nodes = int(node_counts.sum())
    return result


def repeat(data: AnyData, copies: int) -> AnyData:
    """``copies`` stacked copies of ``data``; graph ``b`` of copy ``c`` becomes graph ``c * B + b``."""
    if copies < 1:
        raise ValueError(f"copies: expected >= 1, got {copies}")
    if isinstance(data, Tensor):
        return data.repeat((copies,) + (1,) * (data.dim() - 1))
    return concat([data] * copies)


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


def _ragged_arange(starts: Tensor, counts: Tensor) -> Tensor:
    """``cat([arange(s, s + c) for s, c in zip(starts, counts)])`` without a Python loop."""
    offsets = torch.cumsum(counts, 0) - counts
    total = int(counts.sum())
    return torch.arange(total, device=starts.device) + torch.repeat_interleave(
        starts - offsets, counts, output_size=total
    )


def _graph_ptr(graph_of_row: Tensor, n_graphs: int) -> tuple[Tensor, Tensor]:
    """Rows sorted by graph (a no-op for PyG batches) and each graph's row offsets ``(n_graphs + 1,)``."""
    order = None
    if graph_of_row.numel() > 1 and bool((graph_of_row[1:] < graph_of_row[:-1]).any()):
        order = torch.argsort(graph_of_row, stable=True)
    counts = torch.bincount(graph_of_row, minlength=n_graphs)
    return order, torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


def gather_graphs(data: GraphData, index: Tensor) -> tuple[Batch, Tensor]:
    """The graphs ``index`` of ``data`` (repeats allowed) as a new batch, and the old id of each new node.

    Vectorized over graphs: node and edge rows are cut as ragged ranges of the batch, so picking
    (and repeating) graphs costs a few tensor ops however many graphs there are.
    """
    batch = graph_index(data)
    n = num_graphs(data)
    index = index.to(batch.device)
    node_order, node_ptr = _graph_ptr(batch, n)
    node_counts = (node_ptr[1:] - node_ptr[:-1])[index]
    nodes = _ragged_arange(node_ptr[index], node_counts)
    if node_order is not None:
        nodes = node_order[nodes]
    new_batch = torch.repeat_interleave(torch.arange(index.numel(), device=batch.device), node_counts)
    new_ptr = torch.cat([node_counts.new_zeros(1), torch.cumsum(node_counts, 0)])
    edge_index = getattr(data, "edge_index", None)
    n_edges = edge_index.shape[1] if edge_index is not None else -1
    if edge_index is not None:
        edge_order, edge_ptr = _graph_ptr(batch[edge_index[0]], n)
        edge_counts = (edge_ptr[1:] - edge_ptr[:-1])[index]
        edges = _ragged_arange(edge_ptr[index], edge_counts)
        if edge_order is not None:
            edges = edge_order[edges]
        # Node ids shift by (new start - old start) of the graph each edge now belongs to.
        shift = torch.repeat_interleave(new_ptr[:-1] - node_ptr[index], edge_counts)
    n_nodes = batch.shape[0]
    out: dict[str, object] = {}
    for key in data.keys():
        if key in _BOOKKEEPING:
            continue
        value = data[key]
        if not isinstance(value, Tensor):
            out[key] = [value[int(i)] for i in index] if isinstance(value, list) else value
        elif value.dim() == 0:
            out[key] = value
        elif is_index_field(key) and value.dim() == 2 and value.shape[1] == n_edges:
            out[key] = value[:, edges] + shift
        else:
            level = _level_of_rows(key, value.shape[0], n_nodes, n_edges, n)
            out[key] = value[nodes] if level == "node" else value[edges] if level == "edge" else value[index]
    result = Batch(batch=new_batch, ptr=new_ptr, **out)
    result._num_graphs = index.numel()
    result.num_nodes = int(nodes.numel())
    return result, nodes


def select_graphs(data: AnyData, index: Tensor) -> AnyData:
    """The graphs (or tensor samples) ``index`` of ``data`` as a new batch, in that order (repeats allowed).

    Node order inside each graph is kept and index fields are renumbered.
    """
    if isinstance(data, Tensor):
        return data[index]
    return gather_graphs(data, index)[0]
