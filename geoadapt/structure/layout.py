"""PyG's own metadata, where it still describes every field of a batch.

A batch from PyG's DataLoader (or from this package) carries, per field, its rows per graph (``_slice_dict``)
and what was added to its indices (``_inc_dict``). Where that metadata is complete, a run of graphs is a slice
of every field and a stack is one concatenation per field: no level needs to be worked out, which is most of
the cost of the general routes on the small batches of a training step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch_geometric.data import Batch

from geoadapt.structure.batches import finish, new_batch
from geoadapt.structure.kinds import num_graphs
from geoadapt.structure.levels import Cuts, cat_dim

if TYPE_CHECKING:
    from geoadapt.spec import Spec


@dataclass(frozen=True)
class Field:
    """One field of a batch as PyG's metadata describes it."""

    value: Any
    dim: int | None  # concatenation dim; None: a list with one entry per graph
    slices: Tensor  # rows per graph, (B + 1,) on the CPU
    incs: Tensor | None  # what PyG added to each graph's entries, (B,) on the CPU (None: a list)
    index: bool  # an index field (its entries are node ids)


def pyg_layout(data: object, spec: Spec | None = None) -> dict[str, Field] | None:
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
    cuts = Cuts(data)
    layout = {}
    for key, slices in slice_dict.items():
        value, incs = fields[key], inc_dict.get(key)
        if not isinstance(slices, Tensor) or slices.shape != (n + 1,):
            return None
        if isinstance(value, Tensor):
            if value.dim() == 0 or not isinstance(incs, Tensor) or incs.shape != (n,):
                return None
            dim = cat_dim(data, key, value)
            dim = 0 if dim is None else dim  # one value per graph, stacked on dim 0
            if int(slices[-1]) != value.size(dim):
                return None
            layout[key] = Field(value, dim, slices, incs, cuts.is_index(key, value))
        elif isinstance(value, (list, tuple)) and len(value) == n:
            layout[key] = Field(value, None, slices, None, False)
        else:
            return None
    return layout


def window_of(data: Batch, layout: dict[str, Field], start: int, count: int) -> tuple[Batch, Tensor]:
    """Graphs ``start .. start + count - 1`` of a batch whose ``layout`` is known, every field a slice of the
    batch's own, and the old id of each of its nodes ``(nodes of the window,)``."""
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
    return finish(new_batch(data), fields, slices, incs, batch, node_ptr, count, None), nodes


def stack_layouts(items: Sequence[Batch], layouts: list[dict[str, Field]]) -> Batch | None:
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
    return finish(new_batch(items[0]), fields, slices, incs, batch, ptr, sum(sizes), None)
