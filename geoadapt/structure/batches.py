"""Complete ``Batch`` objects built field by field, with the metadata ``Batch.from_data_list`` would set."""

from __future__ import annotations

import copy
import functools
from typing import Any

from torch import Tensor
from torch_geometric.data import Batch

from geoadapt.structure.kinds import GraphData


@functools.cache
def _empty_batch(base: type) -> Batch:
    """An empty ``Batch`` of ``base`` graphs (PyG builds its class on each call: slow, so it is made once)."""
    return Batch(_base_cls=base)


def new_batch(template: GraphData) -> Batch:
    """An empty batch of the same graph class as ``template`` (so ``__cat_dim__``/``__inc__`` overrides hold)."""
    base = type(template).__bases__[-1] if isinstance(template, Batch) else type(template)
    return copy.copy(_empty_batch(base))


def finish(
    out: Batch,
    fields: dict[str, Any],
    slices: dict[str, Tensor],
    incs: dict[str, Tensor | None],
    batch: Tensor,
    node_ptr: Tensor,
    n_graphs: int,
    node_counts: Tensor | None,
) -> Batch:
    """Fill ``out`` with its fields and the metadata ``Batch.from_data_list`` would set."""
    for key, value in fields.items():
        out[key] = value
    out.batch, out.ptr = batch, node_ptr
    if node_counts is not None:  # the graphs carried an explicit num_nodes: PyG keeps it per graph
        out.num_nodes = int(node_ptr[-1])
        out._store._num_nodes = node_counts.tolist()
    out._num_graphs, out._slice_dict, out._inc_dict = n_graphs, slices, incs
    return out


def along(shift: Tensor, dim: int, ndim: int) -> Tensor:
    """``shift`` (one entry per row) shaped to broadcast along ``dim`` of an ``ndim``-dim tensor."""
    shape = [1] * ndim
    shape[dim] = -1
    return shift.reshape(shape)
