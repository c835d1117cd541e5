"""Layout of the data kinds geoadapt acts on: PyG graphs, point clouds ``(B, N, 3)``, images ``(B, C, H, W)``.

One place decides which rows of a PyG field belong to nodes, edges or graphs, and how to cut, stack
and copy batches (for one forward pass over many transformed copies).

The level of a field is read from PyG's own batching metadata, never guessed from a total row count:

1. ``Spec.levels[key]``, where the user names it, wins (and is checked against the data).
2. On a ``Batch`` built by PyG (``Batch.from_data_list``, a ``DataLoader``) or by this module, the
   field's slices (``_slice_dict``: rows per graph, counted along ``Data.__cat_dim__``) are compared
   with those of the nodes (``ptr``), of the edges (``_slice_dict["edge_index"]``) and of the graphs
   (one row each).
3. Only where that metadata cannot tell, the fields of a periodic system (:data:`GRAPH_FIELDS`: ``cell``,
   ``pbc``, ``stress``) are graph fields, and otherwise PyG's own convention decides (``is_node_attr`` /
   ``is_edge_attr`` in ``torch_geometric.data.storage``): a name holding ``edge`` makes an edge
   field, any other name a node field, then a graph field. That happens when every graph has as many
   edges as nodes, and for a single ``Data`` or a field set after batching (no slices: its total row
   count is all there is). Name the level in ``Spec.levels`` to settle such a field.

Index fields are the ones PyG increments by the node count when batching (``Data.__inc__``:
``edge_index``, ``face``, any ``*index*``); their rows run along their ``__cat_dim__`` (the last one).
:func:`concat`, :func:`repeat` and :func:`gather_graphs` return complete batches: ``to_data_list()``,
``get_example(i)`` and ``index_select`` give the graphs ``Batch.from_data_list`` would.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

import torch
from torch import Tensor
from torch_geometric.data import Batch, Data

if TYPE_CHECKING:
    from geoadapt.spec import Spec

GraphData = Union[Data, Batch]  # noqa: UP007 (a runtime alias)
AnyData = Union[Data, Batch, Tensor]  # noqa: UP007 (a runtime alias)

# Keys that PyG itself manages on a Batch; never treated as fields.
_BOOKKEEPING = ("batch", "ptr", "num_nodes")
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


def field_level(data: GraphData, key: str, spec: Spec | None = None) -> str:
    """``"node"``, ``"edge"`` or ``"graph"``: the level of field ``key`` in ``data``.

    Read from ``spec.levels``, then PyG's slices, then PyG's naming convention (see the module docstring).
    """
    cuts = _Cuts(data)
    level = cuts.level(key, data[key], spec)
    if level is None:
        raise cuts.no_level(key, *cuts.rows(key, data[key]))
    return level


def field_levels(data: GraphData, spec: Spec | None = None) -> dict[str, str]:
    """The level of every field of ``data`` (PyG's ``batch``/``ptr``/``num_nodes`` left out), computed once."""
    cuts = _Cuts(data)
    levels = {}
    for key in data.keys():
        if key in _BOOKKEEPING:
            continue
        level = cuts.level(key, data[key], spec)
        if level is None:
            raise cuts.no_level(key, *cuts.rows(key, data[key]))
        levels[key] = level
    return levels


def row_graph(data: GraphData, level: str) -> Tensor:
    """Graph id of every row of a field at ``level``: ``(rows,)``."""
    if level == "node":
        return graph_index(data)
    if level == "edge":
        return graph_index(data)[data.edge_index[0]]
    return torch.arange(num_graphs(data), device=graph_index(data).device)


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


# --- how a batch is cut into graphs ---------------------------------------------------------------


def _cat_dim(data: GraphData, key: str, value: Tensor) -> int | None:
    """PyG's concatenation dim of ``key`` (``None``: one value per graph, stacked on a new dim 0)."""
    if value.dim() == 0:
        return None
    dim = data.__cat_dim__(key, value)
    if dim is not None and not isinstance(dim, int):
        raise ValueError(f"field {key!r}: expected a dense tensor concatenated along one dim, got cat dims {dim}")
    return dim


def _graph_ptr(graph_of_row: Tensor, n_graphs: int) -> tuple[Tensor | None, Tensor]:
    """Rows sorted by graph (``None``: already sorted, as in every PyG batch) and row offsets ``(n_graphs + 1,)``."""
    order = None
    if graph_of_row.numel() > 1 and bool((graph_of_row[1:] < graph_of_row[:-1]).any()):
        order = torch.argsort(graph_of_row, stable=True)
    counts = torch.bincount(graph_of_row, minlength=n_graphs)
    return order, torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


def _ragged_arange(starts: Tensor, counts: Tensor, total: int) -> Tensor:
    """``cat([arange(s, s + c) for s, c in zip(starts, counts)])`` without a Python loop (``total = sum(counts)``)."""
    offsets = torch.cumsum(counts, 0) - counts
    return torch.arange(total, device=starts.device) + torch.repeat_interleave(
        starts - offsets, counts, output_size=total
    )


class _Cuts:
    """The node, edge and graph offsets of one batch (each computed once, on first use) and the rules above."""

    def __init__(self, data: GraphData) -> None:
        self.data = data
        self.n_graphs = num_graphs(data)
        slice_dict = getattr(data, "_slice_dict", None) if isinstance(data, Batch) else None
        self.slice_dict: dict = slice_dict if isinstance(slice_dict, dict) else {}
        self._ptr: dict[str, tuple[Tensor | None, Tensor]] = {}
        self._slices: dict[str, Tensor | None] = {}
        self._totals: dict[str, int] = {}

    def ptr(self, level: str) -> tuple[Tensor | None, Tensor]:
        """``(order, offsets)`` of the rows of ``level`` on the data's device (see :func:`_graph_ptr`)."""
        if level not in self._ptr:
            batch = graph_index(self.data)
            ptr = getattr(self.data, "ptr", None)
            if level == "node" and ptr is not None and ptr.numel() == self.n_graphs + 1:
                self._ptr[level] = (None, ptr)  # PyG's node offsets (its batches keep nodes grouped by graph)
            elif level == "node":
                self._ptr[level] = _graph_ptr(batch, self.n_graphs)
            elif level == "edge":
                self._ptr[level] = _graph_ptr(batch[self.data.edge_index[0]], self.n_graphs)
            else:
                self._ptr[level] = (None, torch.arange(self.n_graphs + 1, device=batch.device))
        return self._ptr[level]

    def total(self, level: str) -> int:
        """Number of rows of ``level`` in the whole batch (-1 without edges)."""
        if level not in self._totals:
            if level == "node":
                self._totals[level] = graph_index(self.data).numel()
            elif level == "edge":
                edge_index = getattr(self.data, "edge_index", None)
                self._totals[level] = edge_index.size(-1) if edge_index is not None else -1
            else:
                self._totals[level] = self.n_graphs
        return self._totals[level]

    def slices(self, level: str) -> Tensor | None:
        """Row offsets per graph of ``level`` on the CPU, as PyG's slice dicts hold them (None: no edges)."""
        if level not in self._slices:
            if level == "edge" and self.total("edge") < 0:
                self._slices[level] = None
            elif level == "edge" and self._valid("edge_index", self.total("edge")):
                self._slices[level] = self.slice_dict["edge_index"]
            elif level == "graph":
                self._slices[level] = torch.arange(self.n_graphs + 1)
            else:
                self._slices[level] = self.ptr(level)[1].cpu()
        return self._slices[level]

    def _sliced(self, key: str) -> Tensor | None:
        """PyG's slices of ``key`` if shaped for this batch (their last entry is still to be checked)."""
        s = self.slice_dict.get(key)
        return s if isinstance(s, Tensor) and s.shape == (self.n_graphs + 1,) else None

    def _valid(self, key: str, rows: int) -> bool:
        """Whether PyG's slices of ``key`` still describe its ``rows`` (a field replaced after batching may not)."""
        s = self._sliced(key)
        return s is not None and int(s[-1]) == rows

    def own_slices(self, key: str, value: Tensor, dim: int) -> Tensor | None:
        """Rows per graph of field ``key`` from the metadata alone (None: a field of many graphs without slices)."""
        if self._valid(key, value.size(dim)):
            return self.slice_dict[key]
        if self.n_graphs == 1:
            return torch.tensor([0, value.size(dim)])
        return None

    def rows(self, key: str, value: Any) -> tuple[Tensor, int] | None:
        """``value`` with one block of rows per graph along the returned dim; None for a non-tensor value."""
        if isinstance(value, (int, float)) and self.n_graphs == 1:
            value = torch.tensor([value])  # PyG batches a Python number into a tensor with one entry per graph
        if not isinstance(value, Tensor):
            return None
        dim = _cat_dim(self.data, key, value)
        if dim is not None:
            return value, dim
        # PyG stacks such values on a new dim 0: a Batch already holds them stacked, a single graph does not.
        if isinstance(self.data, Batch) and value.dim() > 0:
            return value, 0
        if self.n_graphs != 1:
            raise ValueError(
                f"field {key!r}: expected one value per graph (a dim 0 of {self.n_graphs}), got a 0-dim tensor"
            )
        return value.unsqueeze(0), 0

    def level(self, key: str, value: Any, spec: Spec | None = None) -> str | None:
        """The level of field ``key`` by the rules of the module docstring; None if no level fits its rows."""
        rows = self.rows(key, value)
        if rows is None:
            # PyG collates any other object into a list with one entry per graph.
            return self._settle(key, ["graph"], spec)
        return self.level_of_rows(key, *rows, spec)

    def level_of_rows(self, key: str, value: Tensor, dim: int, spec: Spec | None = None) -> str | None:
        """:meth:`level` for a value already shaped by :meth:`rows`."""
        rows = value.size(dim)
        fits = [lvl for lvl in LEVELS if self.total(lvl) == rows]
        own = self._sliced(key) if fits else None
        if own is not None:
            matched = [lvl for lvl in fits if _same(own, self.slices(lvl))]
            if matched or int(own[-1]) == rows:  # else the field was replaced after batching: totals only
                fits = matched
        return self._settle(key, fits, spec)

    def _settle(self, key: str, candidates: list[str], spec: Spec | None) -> str | None:
        declared = spec.levels.get(key) if spec is not None else None
        if declared is None:
            return _by_convention(key, candidates)
        if declared not in candidates:
            raise ValueError(
                f"field {key!r}: Spec.levels says {declared!r}, but its rows per graph fit {candidates or 'no level'}"
                f" ({self._counts()})"
            )
        return declared

    def no_level(self, key: str, value: Tensor, dim: int) -> ValueError:
        """The error for a field whose rows (``value`` shaped by :meth:`rows`) fit no level."""
        own = self.own_slices(key, value, dim)
        got = f"rows per graph {_head(own)}" if own is not None else f"{value.size(dim)} rows in all"
        return ValueError(
            f"field {key!r} (dim {dim}): expected the rows of nodes, edges or graphs ({self._counts()}), got {got}"
        )

    def _counts(self) -> str:
        parts = []
        for lvl in LEVELS:
            slices = self.slices(lvl)
            if slices is not None:
                parts.append(f"{lvl}s: {int(slices[-1])} in all, per graph {_head(slices)}")
        return "; ".join(parts)

    def per_graph(self, key: str, value: Any) -> list:
        """A non-tensor field as one entry per graph (PyG collates such fields into a list)."""
        if key in self.slice_dict or (isinstance(self.data, Batch) and isinstance(value, (list, tuple))):
            if not isinstance(value, (list, tuple)) or len(value) != self.n_graphs:
                got = f"length {len(value)}" if isinstance(value, (list, tuple)) else type(value).__name__
                raise ValueError(
                    f"field {key!r}: expected a list with one entry per graph ({self.n_graphs}), got {got}"
                )
            return list(value)
        if self.n_graphs != 1:
            raise ValueError(
                f"field {key!r}: expected a list with one entry per graph ({self.n_graphs}), got {value!r}"
            )
        return [value]

    def is_index(self, key: str, value: Tensor) -> bool:
        """Whether PyG adds the node count to ``key`` when batching (``Data.__inc__``): an index field."""
        if "batch" in key:
            raise ValueError(
                f"field {key!r}: PyG increments '*batch*' fields by their own maximum when batching; "
                "expected no such field besides 'batch' (rename or drop it)"
            )
        inc = self.data.__inc__(key, value)
        if isinstance(inc, Tensor) or inc == 0:
            return False
        if inc != self.total("node"):
            raise ValueError(
                f"field {key!r}: expected Data.__inc__ to be 0 or the node count {self.total('node')}, got {inc}"
            )
        return True


def _same(a: Tensor, b: Tensor | None) -> bool:
    return b is not None and a.shape == b.shape and torch.equal(a, b)


def _head(slices: Tensor, n: int = 6) -> str:
    counts = slices.diff().tolist()
    return str(counts[:n])[:-1] + (", ...]" if len(counts) > n else "]")


def _by_convention(key: str, candidates: list[str]) -> str | None:
    """PyG's convention among levels that fit equally (``is_node_attr`` / ``is_edge_attr``), after
    :data:`GRAPH_FIELDS`."""
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    if key in GRAPH_FIELDS and "graph" in candidates:
        return "graph"
    if "edge" in candidates and "edge" in key:
        return "edge"
    for level in ("node", "graph", "edge"):
        if level in candidates:
            return level
    return None


# --- building complete batches --------------------------------------------------------------------


@functools.cache
def _empty_batch(base: type) -> Batch:
    """An empty ``Batch`` of ``base`` graphs (PyG builds its class on each call: slow, so it is made once)."""
    return Batch(_base_cls=base)


def _new_batch(template: GraphData) -> Batch:
    """An empty batch of the same graph class as ``template`` (so ``__cat_dim__``/``__inc__`` overrides hold)."""
    base = type(template).__bases__[-1] if isinstance(template, Batch) else type(template)
    return copy.copy(_empty_batch(base))


def _finish(
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


def _along(shift: Tensor, dim: int, ndim: int) -> Tensor:
    """``shift`` (one entry per row) shaped to broadcast along ``dim`` of an ``ndim``-dim tensor."""
    shape = [1] * ndim
    shape[dim] = -1
    return shift.reshape(shape)


# --- PyG's own metadata, where it still describes every field ---------------------------------------
# A batch from PyG's DataLoader (or from this module) carries, per field, its rows per graph (``_slice_dict``)
# and what was added to its indices (``_inc_dict``). Where that metadata is complete, a run of graphs is a slice
# of every field and a stack is one concatenation per field: no level needs to be worked out, which is most of
# the cost of the general routes on the small batches of a training step.


@dataclass(frozen=True)
class _Field:
    """One field of a batch as PyG's metadata describes it."""

    value: Any
    dim: int | None  # concatenation dim; None: a list with one entry per graph
    slices: Tensor  # rows per graph, (B + 1,) on the CPU
    incs: Tensor | None  # what PyG added to each graph's entries, (B,) on the CPU (None: a list)
    index: bool  # an index field (its entries are node ids)


def _pyg_layout(data: object, spec: Spec | None = None) -> dict[str, _Field] | None:
    """Every field of a PyG ``Batch`` whose metadata describes them all as they are now; ``None`` otherwise (a
    field set after batching, an explicit ``num_nodes``, levels named in ``spec``): the general routes then place
    the fields by level."""
    if not isinstance(data, Batch) or (spec is not None and spec.levels):
        return None
    slice_dict, inc_dict = getattr(data, "_slice_dict", None), getattr(data, "_inc_dict", None)
    if not isinstance(slice_dict, dict) or not isinstance(inc_dict, dict):
        return None
    fields = data.to_dict()
    n, ptr = num_graphs(data), fields.get("ptr")
    if (
        "num_nodes" in fields
        or ptr is None
        or ptr.numel() != n + 1
        or slice_dict.keys() != fields.keys() - {"batch", "ptr"}
    ):
        return None
    cuts = _Cuts(data)
    layout = {}
    for key, slices in slice_dict.items():
        value, incs = fields[key], inc_dict.get(key)
        if not isinstance(slices, Tensor) or slices.shape != (n + 1,):
            return None
        if isinstance(value, Tensor):
            if value.dim() == 0 or not isinstance(incs, Tensor) or incs.shape != (n,):
                return None
            dim = _cat_dim(data, key, value)
            dim = 0 if dim is None else dim  # one value per graph, stacked on dim 0
            if int(slices[-1]) != value.size(dim):
                return None
            layout[key] = _Field(value, dim, slices, incs, cuts.is_index(key, value))
        elif isinstance(value, (list, tuple)) and len(value) == n:
            layout[key] = _Field(value, None, slices, None, False)
        else:
            return None
    return layout


def window(data: GraphData, start: int, count: int, spec: Spec | None = None) -> tuple[Batch, Tensor]:
    """Graphs ``start .. start + count - 1`` of ``data`` as a complete batch, and the old id of each of its nodes.

    On a batch from PyG's loader every field is a slice (a view) of the batch's own; otherwise the graphs are
    gathered (:func:`gather_graphs`). Shapes: ``(nodes of the window,)`` for the node ids.
    """
    n = num_graphs(data)
    if not (0 <= start and count >= 1 and start + count <= n):
        raise ValueError(f"window: expected graphs within [0, {n}), got start {start} and count {count}")
    return _cut(data, _pyg_layout(data, spec), start, count, spec)


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
    layout = _pyg_layout(data, spec)
    ends = starts[1:] + [len(sizes)]
    return [_cut(data, layout, start, end - start, spec)[0] for start, end in zip(starts, ends)]


def _cut(
    data: GraphData, layout: dict[str, _Field] | None, start: int, count: int, spec: Spec | None
) -> tuple[Batch, Tensor]:
    """:func:`window` given the batch's layout (``None``: the graphs are gathered)."""
    if layout is None:
        return gather_graphs(data, torch.arange(start, start + count, device=graph_index(data).device), spec)
    return _window(data, layout, start, count)


def _window(data: Batch, layout: dict[str, _Field], start: int, count: int) -> tuple[Batch, Tensor]:
    # Offsets are read as Python numbers: a handful of tiny tensor ops per field is what a window costs.
    ptr = data.ptr
    first, last = ptr[start].item(), ptr[start + count].item()
    zeros = torch.zeros(count, dtype=torch.long)
    fields: dict[str, Any] = {}
    slices: dict[str, Tensor] = {}
    incs: dict[str, Tensor | None] = {}
    for key, f in layout.items():
        offsets = f.slices.tolist()
        lo, hi = offsets[start], offsets[start + count]
        cut = f.slices[start : start + count + 1]
        slices[key] = cut - lo if lo else cut
        if f.dim is None:
            fields[key], incs[key] = list(f.value[start : start + count]), None
            continue
        part = f.value.narrow(f.dim, lo, hi - lo)
        fields[key] = part - first if f.index and first else part
        incs[key] = f.incs[start : start + count] - f.incs[start] if f.index else zeros
    batch = data.batch[first:last]
    batch = batch - start if start else batch
    node_ptr = ptr[start : start + count + 1]
    node_ptr = node_ptr - first if first else node_ptr
    nodes = torch.arange(first, last, device=ptr.device)
    return _finish(_new_batch(data), fields, slices, incs, batch, node_ptr, count, None), nodes


def take_graphs(data: GraphData, index: Tensor, spec: Spec | None = None) -> tuple[Batch, Tensor]:
    """:func:`gather_graphs`, cheaper where ``index`` (on the CPU) runs through consecutive graphs, wrapping from
    the last graph to the first: such a run is cut as one or two :func:`window` s of the batch's own fields."""
    n, m = num_graphs(data), index.numel()
    if m and (int(index.min()) < 0 or int(index.max()) >= n):
        raise ValueError(f"graphs: expected indices in [0, {n}), got {index.min().item()} to {index.max().item()}")
    layout = _pyg_layout(data, spec) if index.device.type == "cpu" and 0 < m <= n else None
    start = int(index[0]) if layout is not None else -1
    if not 0 <= start < n or not torch.equal(index, (torch.arange(start, start + m) % n)):
        return gather_graphs(data, index, spec)
    if start + m <= n:
        return _window(data, layout, start, m)
    (head, head_nodes), (tail, tail_nodes) = (
        _window(data, layout, start, n - start),
        _window(data, layout, 0, start + m - n),
    )
    return concat([head, tail], spec), torch.cat([head_nodes, tail_nodes])


def _stack_layouts(items: Sequence[Batch], layouts: list[dict[str, _Field]]) -> Batch | None:
    """:func:`concat` of batches whose PyG metadata describes every field; ``None`` when their fields differ."""
    keys = list(layouts[0])
    if any(list(layout) != keys for layout in layouts[1:]):
        return None
    ptrs = [item.ptr for item in items]
    counts = [int(p[-1]) for p in ptrs]
    node_offsets = [sum(counts[:i]) for i in range(len(items))]
    sizes = [p.numel() - 1 for p in ptrs]
    graph_offsets = [sum(sizes[:i]) for i in range(len(items))]
    fields: dict[str, Any] = {}
    slices: dict[str, Tensor] = {}
    incs: dict[str, Tensor | None] = {}
    for key in keys:
        parts = [layout[key] for layout in layouts]
        if len({f.dim for f in parts}) != 1 or len({f.index for f in parts}) != 1:
            return None
        rows = [int(f.slices[-1]) for f in parts]
        slices[key] = torch.cat([parts[0].slices] + [f.slices[1:] + sum(rows[:i]) for i, f in enumerate(parts) if i])
        if parts[0].dim is None:
            fields[key], incs[key] = [v for f in parts for v in f.value], None
        elif parts[0].index:
            fields[key] = torch.cat(
                [f.value + o if o else f.value for f, o in zip(parts, node_offsets)], dim=parts[0].dim
            )
            incs[key] = torch.cat([f.incs + o if o else f.incs for f, o in zip(parts, node_offsets)])
        else:
            fields[key] = torch.cat([f.value for f in parts], dim=parts[0].dim)
            incs[key] = torch.cat([f.incs for f in parts])
    batch = torch.cat([item.batch + o if o else item.batch for item, o in zip(items, graph_offsets)])
    ptr = torch.cat([ptrs[0]] + [p[1:] + o for p, o in zip(ptrs[1:], node_offsets[1:])])
    return _finish(_new_batch(items[0]), fields, slices, incs, batch, ptr, sum(sizes), None)


def concat(items: Sequence[AnyData], spec: Spec | None = None) -> AnyData:
    """Stack graphs / batches into one complete ``Batch`` (graphs keep their order), or tensors on dim 0.

    Unlike ``Batch.from_data_list`` this works on whole batches with one concatenation per field, so K
    transformed copies of a batch cost no Python loop over graphs. ``spec.levels`` settles fields the
    metadata cannot place (see the module docstring).
    """
    first = items[0]
    if isinstance(first, Tensor):
        return torch.cat(list(items), dim=0)
    layouts = [_pyg_layout(item, spec) for item in items]
    if all(layout is not None for layout in layouts):
        stacked = _stack_layouts(items, layouts)
        if stacked is not None:
            return stacked
    # The same object often comes many times (repeat): its layout is read once.
    distinct: dict[int, _Cuts] = {}
    cuts = [distinct.setdefault(id(d), _Cuts(d)) for d in items]
    keys = {i: set(c.data.keys()) for i, c in distinct.items()}
    node_offsets, graph_offsets = [0], [0]
    for c in cuts:
        node_offsets.append(node_offsets[-1] + c.total("node"))
        graph_offsets.append(graph_offsets[-1] + c.n_graphs)
    n_graphs = graph_offsets[-1]
    stacked: dict[str, Tensor] = {"graph": torch.arange(n_graphs + 1)}

    def level_slices(level: str) -> Tensor:
        """The new batch's row offsets of ``level`` (CPU), shared by every field of that level."""
        if level not in stacked:
            per_item = {i: c.slices(level).diff() for i, c in distinct.items()}
            counts = torch.cat([per_item[id(c.data)] for c in cuts])
            stacked[level] = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        return stacked[level]

    batch = torch.cat([graph_index(d) + o for d, o in zip(items, graph_offsets)])
    node_ptr = level_slices("node").to(batch.device)
    fields: dict[str, Any] = {}
    slices: dict[str, Tensor] = {}
    incs: dict[str, Tensor | None] = {}
    zeros = torch.zeros(n_graphs, dtype=torch.long)
    for key in first.keys():
        if key in _BOOKKEEPING:
            continue
        for i, d in enumerate(items):
            if key not in keys[id(d)]:
                raise ValueError(
                    f"field {key!r}: expected in every item, missing from item {i} (has {sorted(keys[id(d)])})"
                )
        rows = {i: c.rows(key, c.data[key]) for i, c in distinct.items()}
        if rows[id(first)] is None:
            fields[key] = [v for c, d in zip(cuts, items) for v in c.per_graph(key, d[key])]
            slices[key], incs[key] = stacked["graph"], None
            continue
        for i, d in enumerate(items):
            if rows[id(d)] is None:
                raise ValueError(
                    f"field {key!r}: expected a tensor in every item (as in item 0), got in item {i} {d[key]!r}"
                )
        levels = {c.level_of_rows(key, *rows[i], spec) for i, c in distinct.items()}
        level = levels.pop() if len(levels) == 1 else None
        if level is not None:
            slices[key] = level_slices(level)
        else:  # a field of no level (``face``), or one that the items place differently: its own rows per graph
            counts = torch.cat([_own_counts(c, key, *rows[id(c.data)], spec) for c in cuts])
            slices[key] = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        index = cuts[0].is_index(key, first[key])
        parts = [
            rows[id(d)][0] + offset if index and offset else rows[id(d)][0] for d, offset in zip(items, node_offsets)
        ]
        fields[key] = torch.cat(parts, dim=rows[id(first)][1])
        incs[key] = stacked["node"][:-1] if index else zeros
    explicit = node_ptr.diff() if "num_nodes" in first.keys() else None
    return _finish(_new_batch(first), fields, slices, incs, batch, node_ptr, n_graphs, explicit)


def _own_counts(cuts: _Cuts, key: str, value: Tensor, dim: int, spec: Spec | None) -> Tensor:
    """Rows per graph ``(B,)`` of field ``key`` (shaped by :meth:`_Cuts.rows`): its slices, else its level's."""
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
    cuts, out = _Cuts(stacked), copy.copy(template)
    nodes = stacked.num_nodes // copies
    for key in stacked.keys():
        value = stacked[key]
        if key in _BOOKKEEPING or not isinstance(value, Tensor):
            continue
        if unchanged is not None and key in unchanged and value is unchanged[key]:
            continue
        dim = _cat_dim(stacked, key, value) or 0
        rows, rest = divmod(value.size(dim), copies)
        if rest:
            raise ValueError(
                f"field {key!r}: expected {copies} equal copies along dim {dim}, got {value.size(dim)} rows"
            )
        value = value.narrow(dim, first * rows, count * rows)
        out[key] = value - first * nodes if first and cuts.is_index(key, value) else value
    return out


def gather_graphs(data: GraphData, index: Tensor, spec: Spec | None = None) -> tuple[Batch, Tensor]:
    """The graphs ``index`` of ``data`` (repeats allowed) as a complete batch, and the old id of each new node.

    Vectorized over graphs: the rows of each level are cut as ragged ranges once, then every field of
    that level takes them with one ``index_select``, however many graphs there are.
    ``spec.levels`` settles fields the metadata cannot place (see the module docstring).
    """
    cuts = _Cuts(data)
    batch = graph_index(data)
    index = index.to(batch.device)
    m = index.numel()
    # level (or a field of no level) -> its old rows, rows per new graph, new offsets on the device and the CPU
    picked: dict[str, tuple[Tensor, Tensor, Tensor, Tensor]] = {}

    def take(order: Tensor | None, ptr: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        counts = ptr.diff()[index]
        new_ptr = torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])
        new_ptr_cpu = new_ptr.cpu()
        rows = _ragged_arange(ptr[index], counts, int(new_ptr_cpu[-1]))
        return (order[rows] if order is not None else rows), counts, new_ptr, new_ptr_cpu

    def level_rows(level: str) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        if level not in picked:
            if level == "graph":
                graph_ptr = torch.arange(m + 1)
                picked[level] = (index, torch.ones_like(index), graph_ptr.to(index.device), graph_ptr)
            else:
                picked[level] = take(*cuts.ptr(level))
        return picked[level]

    nodes, node_counts, node_ptr, node_ptr_cpu = level_rows("node")
    node_shift = node_ptr[:-1] - cuts.ptr("node")[1][index]  # index fields: new start - old start of each graph
    fields: dict[str, Any] = {}
    slices: dict[str, Tensor] = {}
    incs: dict[str, Tensor | None] = {}
    zeros = torch.zeros(m, dtype=torch.long)
    positions: list[int] | None = None
    for key in data.keys():
        if key in _BOOKKEEPING:
            continue
        value = data[key]
        rows = cuts.rows(key, value)
        if rows is None:
            values = cuts.per_graph(key, value)
            positions = index.tolist() if positions is None else positions
            fields[key] = [values[i] for i in positions]
            slices[key], incs[key] = level_rows("graph")[3], None
            continue
        value, dim = rows
        level = cuts.level_of_rows(key, value, dim, spec)
        if level is not None:
            old, counts, _, slices[key] = level_rows(level)
        else:
            own = cuts.own_slices(key, value, dim)
            if own is None:
                raise cuts.no_level(key, value, dim)
            old, counts, _, slices[key] = take(None, own.to(batch.device))
        fields[key] = value.index_select(dim, old)
        incs[key] = zeros
        if cuts.is_index(key, value):
            shift = (
                node_shift if level == "graph" else torch.repeat_interleave(node_shift, counts, output_size=old.numel())
            )
            fields[key] = fields[key] + _along(shift, dim, value.dim())
            incs[key] = node_ptr_cpu[:-1]
    new_batch = torch.repeat_interleave(torch.arange(m, device=batch.device), node_counts, output_size=nodes.numel())
    explicit = node_counts if "num_nodes" in data.keys() else None
    return _finish(_new_batch(data), fields, slices, incs, new_batch, node_ptr, m, explicit), nodes


def select_graphs(data: AnyData, index: Tensor, spec: Spec | None = None) -> AnyData:
    """The graphs (or tensor samples) ``index`` of ``data`` as a new batch, in that order (repeats allowed).

    Node order inside each graph is kept and index fields are renumbered.
    """
    if isinstance(data, Tensor):
        return data[index]
    return gather_graphs(data, index, spec)[0]
