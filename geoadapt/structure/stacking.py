"""Stacking batches into one: :func:`concat`, :func:`repeat`, and cutting copies back out (:func:`take_copies`).

:func:`concat` and :func:`repeat` return complete batches: ``to_data_list()``, ``get_example(i)`` and
``index_select`` give the graphs ``Batch.from_data_list`` would.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch_geometric.data import Batch

from geoadapt.structure.batches import finish, new_batch
from geoadapt.structure.kinds import BOOKKEEPING, AnyData, graph_index
from geoadapt.structure.layout import pyg_layout, stack_layouts
from geoadapt.structure.levels import Cuts, cat_dim

if TYPE_CHECKING:
    from geoadapt.spec import Spec


def concat(items: Sequence[AnyData], spec: Spec | None = None) -> AnyData:
    """Stack graphs / batches into one complete ``Batch`` (graphs keep their order), or tensors on dim 0.

    Unlike ``Batch.from_data_list`` this works on whole batches with one concatenation per field, so K
    transformed copies of a batch cost no Python loop over graphs. ``spec.levels`` settles fields the
    metadata cannot place (see :mod:`geoadapt.structure.levels`).
    """
    first = items[0]
    if isinstance(first, Tensor):
        return torch.cat(list(items), dim=0)
    layouts = [pyg_layout(item, spec) for item in items]
    if all(layout is not None for layout in layouts):
        stacked = stack_layouts(items, layouts)
        if stacked is not None:
            return stacked
    return _Stack(items, spec).batch()


class _Stack:
    """The general route of :func:`concat`: every field placed by its level, each distinct item read once (the
    same object often comes many times, as in :func:`repeat`)."""

    def __init__(self, items: Sequence[AnyData], spec: Spec | None) -> None:
        self.items, self.spec, self.first = items, spec, items[0]
        self.distinct: dict[int, Cuts] = {}
        self.cuts = [self.distinct.setdefault(id(d), Cuts(d)) for d in items]
        self.keys = {i: set(c.data.keys()) for i, c in self.distinct.items()}
        self.node_offsets, self.graph_offsets = [0], [0]
        for c in self.cuts:
            self.node_offsets.append(self.node_offsets[-1] + c.total("node"))
            self.graph_offsets.append(self.graph_offsets[-1] + c.n_graphs)
        self.n_graphs = self.graph_offsets[-1]
        self.stacked: dict[str, Tensor] = {"graph": torch.arange(self.n_graphs + 1)}

    def level_slices(self, level: str) -> Tensor:
        """The new batch's row offsets of ``level`` (CPU), shared by every field of that level."""
        if level not in self.stacked:
            per_item = {i: c.slices(level).diff() for i, c in self.distinct.items()}
            counts = torch.cat([per_item[id(c.data)] for c in self.cuts])
            self.stacked[level] = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        return self.stacked[level]

    def batch(self) -> Batch:
        """The stacked batch."""
        batch = torch.cat([graph_index(d) + o for d, o in zip(self.items, self.graph_offsets)])
        node_ptr = self.level_slices("node").to(batch.device)
        fields: dict[str, Any] = {}
        slices: dict[str, Tensor] = {}
        incs: dict[str, Tensor | None] = {}
        zeros = torch.zeros(self.n_graphs, dtype=torch.long)
        for key in self.first.keys():
            if key in BOOKKEEPING:
                continue
            fields[key], slices[key], incs[key] = self.field(key, zeros)
        explicit = node_ptr.diff() if "num_nodes" in self.first.keys() else None
        return finish(new_batch(self.first), fields, slices, incs, batch, node_ptr, self.n_graphs, explicit)

    def field(self, key: str, zeros: Tensor) -> tuple[Any, Tensor, Tensor | None]:
        """Field ``key`` of the stacked batch: its value, its row offsets per graph and PyG's increments."""
        items, first = self.items, self.first
        for i, d in enumerate(items):
            if key not in self.keys[id(d)]:
                raise ValueError(
                    f"field {key!r}: expected in every item, missing from item {i} (has {sorted(self.keys[id(d)])})"
                )
        rows = {i: c.rows(key, c.data[key]) for i, c in self.distinct.items()}
        if rows[id(first)] is None:
            return [v for c, d in zip(self.cuts, items) for v in c.per_graph(key, d[key])], self.stacked["graph"], None
        for i, d in enumerate(items):
            if rows[id(d)] is None:
                raise ValueError(
                    f"field {key!r}: expected a tensor in every item (as in item 0), got in item {i} {d[key]!r}"
                )
        levels = {c.level_of_rows(key, *rows[i], self.spec) for i, c in self.distinct.items()}
        level = levels.pop() if len(levels) == 1 else None
        if level is not None:
            slices = self.level_slices(level)
        else:  # a field of no level (``face``), or one that the items place differently: its own rows per graph
            counts = torch.cat([_own_counts(c, key, *rows[id(c.data)], self.spec) for c in self.cuts])
            slices = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        index = self.cuts[0].is_index(key, first[key])
        parts = [
            rows[id(d)][0] + offset if index and offset else rows[id(d)][0]
            for d, offset in zip(items, self.node_offsets)
        ]
        value = torch.cat(parts, dim=rows[id(first)][1])
        return value, slices, self.stacked["node"][:-1] if index else zeros


def _own_counts(cuts: Cuts, key: str, value: Tensor, dim: int, spec: Spec | None) -> Tensor:
    """Rows per graph ``(B,)`` of field ``key`` (shaped by :meth:`Cuts.rows`): its slices, else its level's."""
    own = cuts.own_slices(key, value, dim)
    if own is None:
        level = cuts.level_of_rows(key, value, dim, spec)
        if level is None:
            raise cuts.no_level(key, value, dim)
        own = cuts.slices(level)
    return own.diff()


def repeat(data: AnyData, copies: int, spec: Spec | None = None) -> AnyData:
    """``copies`` stacked copies of ``data``; graph ``b`` of copy ``c`` becomes graph ``c * B + b``."""
    if copies < 1:
        raise ValueError(f"copies: expected >= 1, got {copies}")
    if isinstance(data, Tensor):
        return data.repeat((copies,) + (1,) * (data.dim() - 1))
    return concat([data] * copies, spec)


def take_copies(
    stacked: AnyData, copies: int, first: int, count: int, template: AnyData, unchanged: AnyData | None = None
) -> AnyData:
    """Copies ``first .. first + count - 1`` of ``stacked``, which holds ``copies`` copies of one batch.

    ``template`` is ``count`` copies of that batch (:func:`repeat`): it gives the structure (batch vector,
    offsets, metadata). Fields of ``stacked`` that are the very tensors of ``unchanged`` (the copies before
    they were transformed) come from the template; the others are cut out as views (index fields: renumbered
    copies). Costs a few tensor ops per changed field, where :func:`gather_graphs` would build a new batch.
    """
    if isinstance(stacked, Tensor):
        size = stacked.shape[0] // copies
        return stacked[first * size : (first + count) * size]
    cuts, out = Cuts(stacked), copy.copy(template)
    nodes = stacked.num_nodes // copies
    for key in stacked.keys():
        value = stacked[key]
        if key in BOOKKEEPING or not isinstance(value, Tensor):
            continue
        if unchanged is not None and key in unchanged and value is unchanged[key]:
            continue
        dim = cat_dim(stacked, key, value) or 0
        rows, rest = divmod(value.size(dim), copies)
        if rest:
            raise ValueError(
                f"field {key!r}: expected {copies} equal copies along dim {dim}, got {value.size(dim)} rows"
            )
        value = value.narrow(dim, first * rows, count * rows)
        out[key] = value - first * nodes if first and cuts.is_index(key, value) else value
    return out
