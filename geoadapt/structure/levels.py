"""Which rows of a PyG field belong to nodes, edges or graphs.

The level of a field is read from PyG's own batching metadata, never guessed from a total row count:

1. ``Spec.levels[key]``, where the user names it, wins (and is checked against the data).
2. On a ``Batch`` built by PyG (``Batch.from_data_list``, a ``DataLoader``) or by this package, the
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
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch_geometric.data import Batch

from geoadapt.structure.kinds import BOOKKEEPING, GRAPH_FIELDS, LEVELS, GraphData, graph_index, num_graphs

if TYPE_CHECKING:
    from geoadapt.spec import Spec


def field_level(data: GraphData, key: str, spec: Spec | None = None) -> str:
    """``"node"``, ``"edge"`` or ``"graph"``: the level of field ``key`` in ``data``.

    Read from ``spec.levels``, then PyG's slices, then PyG's naming convention (see the module docstring).
    """
    cuts = Cuts(data)
    level = cuts.level(key, data[key], spec)
    if level is None:
        raise cuts.no_level(key, *cuts.rows(key, data[key]))
    return level


def field_levels(data: GraphData, spec: Spec | None = None) -> dict[str, str]:
    """The level of every field of ``data`` (PyG's ``batch``/``ptr``/``num_nodes`` left out), computed once."""
    cuts = Cuts(data)
    levels = {}
    for key in data.keys():
        if key in BOOKKEEPING:
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


def cat_dim(data: GraphData, key: str, value: Tensor) -> int | None:
    """PyG's concatenation dim of ``key`` (``None``: one value per graph, stacked on a new dim 0)."""
    if value.dim() == 0:
        return None
    dim = data.__cat_dim__(key, value)
    if dim is not None and not isinstance(dim, int):
        raise ValueError(f"field {key!r}: expected a dense tensor concatenated along one dim, got cat dims {dim}")
    return dim


def graph_ptr(graph_of_row: Tensor, n_graphs: int) -> tuple[Tensor | None, Tensor]:
    """Rows sorted by graph (``None``: already sorted, as in every PyG batch) and row offsets ``(n_graphs + 1,)``."""
    order = None
    if graph_of_row.numel() > 1 and bool((graph_of_row[1:] < graph_of_row[:-1]).any()):
        order = torch.argsort(graph_of_row, stable=True)
    counts = torch.bincount(graph_of_row, minlength=n_graphs)
    return order, torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


def ragged_arange(starts: Tensor, counts: Tensor, total: int) -> Tensor:
    """``cat([arange(s, s + c) for s, c in zip(starts, counts)])`` without a Python loop (``total = sum(counts)``)."""
    offsets = torch.cumsum(counts, 0) - counts
    return torch.arange(total, device=starts.device) + torch.repeat_interleave(
        starts - offsets, counts, output_size=total
    )


class Cuts:
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
        """``(order, offsets)`` of the rows of ``level`` on the data's device (see :func:`graph_ptr`)."""
        if level not in self._ptr:
            batch = graph_index(self.data)
            ptr = getattr(self.data, "ptr", None)
            if level == "node" and ptr is not None and ptr.numel() == self.n_graphs + 1:
                self._ptr[level] = (None, ptr)  # PyG's node offsets (its batches keep nodes grouped by graph)
            elif level == "node":
                self._ptr[level] = graph_ptr(batch, self.n_graphs)
            elif level == "edge":
                self._ptr[level] = graph_ptr(batch[self.data.edge_index[0]], self.n_graphs)
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
        dim = cat_dim(self.data, key, value)
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
