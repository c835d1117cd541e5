"""Cutting graphs out of a batch: :func:`gather_graphs` (any graphs, repeats allowed), :func:`take_graphs` and
:func:`window` (runs of consecutive graphs, as views where PyG's metadata allows), :func:`runs_under` (a batch
as runs under a node budget). Each returns a complete batch."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch_geometric.data import Batch

from geoadapt.structure.batches import along, finish, new_batch
from geoadapt.structure.kinds import BOOKKEEPING, AnyData, GraphData, graph_index, num_graphs
from geoadapt.structure.layout import Field, pyg_layout, window_of
from geoadapt.structure.levels import Cuts, ragged_arange
from geoadapt.structure.stacking import concat

if TYPE_CHECKING:
    from geoadapt.spec import Spec


def window(data: GraphData, start: int, count: int, spec: Spec | None = None) -> tuple[Batch, Tensor]:
    """Graphs ``start .. start + count - 1`` of ``data`` as a complete batch, and the old id of each of its nodes.

    On a batch from PyG's loader every field is a slice (a view) of the batch's own; otherwise the graphs are
    gathered (:func:`gather_graphs`). Shapes: ``(nodes of the window,)`` for the node ids.
    """
    n = num_graphs(data)
    if not (0 <= start and count >= 1 and start + count <= n):
        raise ValueError(f"window: expected graphs within [0, {n}), got start {start} and count {count}")
    return _cut(data, pyg_layout(data, spec), start, count, spec)


def runs_under(data: GraphData, max_nodes: int, spec: Spec | None = None) -> list[Batch]:
    """``data`` as runs of consecutive graphs of at most ``max_nodes`` nodes each (a larger graph runs alone), in
    order: each a :func:`window` of ``data``, its PyG metadata read once for all of them."""
    sizes = torch.bincount(graph_index(data), minlength=num_graphs(data)).tolist()
    starts, nodes = [0], 0
    for i, size in enumerate(sizes):
        if nodes and nodes + size > max_nodes:
            starts.append(i)
            nodes = 0
        nodes += size
    layout = pyg_layout(data, spec)
    ends = starts[1:] + [len(sizes)]
    return [_cut(data, layout, start, end - start, spec)[0] for start, end in zip(starts, ends)]


def _cut(
    data: GraphData, layout: dict[str, Field] | None, start: int, count: int, spec: Spec | None
) -> tuple[Batch, Tensor]:
    """:func:`window` given the batch's layout (``None``: the graphs are gathered)."""
    if layout is None:
        return gather_graphs(data, torch.arange(start, start + count, device=graph_index(data).device), spec)
    return window_of(data, layout, start, count)


def take_graphs(data: GraphData, index: Tensor, spec: Spec | None = None) -> tuple[Batch, Tensor]:
    """:func:`gather_graphs`, cheaper where ``index`` (on the CPU) runs through consecutive graphs, wrapping from
    the last graph to the first: such a run is cut as one or two :func:`window` s of the batch's own fields."""
    n, m = num_graphs(data), index.numel()
    if m and (int(index.min()) < 0 or int(index.max()) >= n):
        raise ValueError(f"graphs: expected indices in [0, {n}), got {index.min().item()} to {index.max().item()}")
    layout = pyg_layout(data, spec) if index.device.type == "cpu" and 0 < m <= n else None
    start = int(index[0]) if layout is not None else -1
    if not 0 <= start < n or not torch.equal(index, (torch.arange(start, start + m) % n)):
        return gather_graphs(data, index, spec)
    if start + m <= n:
        return window_of(data, layout, start, m)
    (head, head_nodes), (tail, tail_nodes) = (
        window_of(data, layout, start, n - start),
        window_of(data, layout, 0, start + m - n),
    )
    return concat([head, tail], spec), torch.cat([head_nodes, tail_nodes])


def gather_graphs(data: GraphData, index: Tensor, spec: Spec | None = None) -> tuple[Batch, Tensor]:
    """The graphs ``index`` of ``data`` (repeats allowed) as a complete batch, and the old id of each new node.

    Vectorized over graphs: the rows of each level are cut as ragged ranges once, then every field of
    that level takes them with one ``index_select``, however many graphs there are.
    ``spec.levels`` settles fields the metadata cannot place (see :mod:`geoadapt.structure.levels`).
    """
    return _Gather(data, index, spec).batch()


class _Gather:
    """One :func:`gather_graphs`: the old rows of each level (or of a field of no level) cut once, on first use."""

    def __init__(self, data: GraphData, index: Tensor, spec: Spec | None) -> None:
        self.data, self.spec, self.cuts = data, spec, Cuts(data)
        self.device = graph_index(data).device
        self.index = index.to(self.device)
        self.m = self.index.numel()
        # level -> its old rows, rows per new graph, new offsets on the device and the CPU
        self.picked: dict[str, tuple[Tensor, Tensor, Tensor, Tensor]] = {}
        self.positions: list[int] | None = None

    def take(self, order: Tensor | None, ptr: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The old rows of the chosen graphs for rows cut by ``ptr`` (sorted by ``order``), and the new offsets."""
        counts = ptr.diff()[self.index]
        new_ptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        new_ptr_cpu = new_ptr.cpu()
        rows = ragged_arange(ptr[self.index], counts, int(new_ptr_cpu[-1]))
        return (order[rows] if order is not None else rows), counts, new_ptr, new_ptr_cpu

    def level_rows(self, level: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """:meth:`take` for the rows of ``level``, computed once."""
        if level not in self.picked:
            if level == "graph":
                graph_ptr = torch.arange(self.m + 1)
                self.picked[level] = (self.index, torch.ones_like(self.index), graph_ptr.to(self.device), graph_ptr)
            else:
                self.picked[level] = self.take(*self.cuts.ptr(level))
        return self.picked[level]

    def batch(self) -> tuple[Batch, Tensor]:
        """The gathered batch and the old id of each of its nodes."""
        nodes, node_counts, node_ptr, node_ptr_cpu = self.level_rows("node")
        # index fields: new start - old start of each graph
        self.node_shift = node_ptr[:-1] - self.cuts.ptr("node")[1][self.index]
        fields: dict[str, Any] = {}
        slices: dict[str, Tensor] = {}
        incs: dict[str, Tensor | None] = {}
        zeros = torch.zeros(self.m, dtype=torch.long)
        for key in self.data.keys():
            if key not in BOOKKEEPING:
                fields[key], slices[key], incs[key] = self.field(key, zeros, node_ptr_cpu)
        graph_of_node = torch.repeat_interleave(
            torch.arange(self.m, device=self.device), node_counts, output_size=nodes.numel()
        )
        explicit = node_counts if "num_nodes" in self.data.keys() else None
        out = finish(new_batch(self.data), fields, slices, incs, graph_of_node, node_ptr, self.m, explicit)
        return out, nodes

    def field(self, key: str, zeros: Tensor, node_ptr_cpu: Tensor) -> tuple[Any, Tensor, Tensor | None]:
        """Field ``key`` of the gathered batch: its value, its row offsets per graph and PyG's increments."""
        cuts, value = self.cuts, self.data[key]
        rows = cuts.rows(key, value)
        if rows is None:
            values = cuts.per_graph(key, value)
            self.positions = self.index.tolist() if self.positions is None else self.positions
            return [values[i] for i in self.positions], self.level_rows("graph")[3], None
        value, dim = rows
        level = cuts.level_of_rows(key, value, dim, self.spec)
        if level is not None:
            old, counts, _, slices = self.level_rows(level)
        else:
            own = cuts.own_slices(key, value, dim)
            if own is None:
                raise cuts.no_level(key, value, dim)
            old, counts, _, slices = self.take(None, own.to(self.device))
        taken = value.index_select(dim, old)
        if not cuts.is_index(key, value):
            return taken, slices, zeros
        shift = (
            self.node_shift
            if level == "graph"
            else torch.repeat_interleave(self.node_shift, counts, output_size=old.numel())
        )
        return taken + along(shift, dim, value.dim()), slices, node_ptr_cpu[:-1]


def select_graphs(data: AnyData, index: Tensor, spec: Spec | None = None) -> AnyData:
    """The graphs (or tensor samples) ``index`` of ``data`` as a new batch, in that order (repeats allowed).

    Node order inside each graph is kept and index fields are renumbered.
    """
    if isinstance(data, Tensor):
        return data[index]
    return gather_graphs(data, index, spec)[0]
