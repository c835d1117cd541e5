"""Transformed copies of a batch: which samples are copied, under which group elements, and how a range of
copies is cut back out for a forward of its own."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from geoadapt.devices import data_device
from geoadapt.groups.base import Element, Group, on_device_of
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, gather_graphs, is_graph, num_graphs, repeat, take_copies, take_graphs


@dataclass
class Copies:
    """``copies`` transformed copies of (some graphs of) a batch: ``moved = g · tile(selected graphs)``.

    Attributes:
        moved: the transformed copies, stacked: sample ``b`` of copy ``c`` is sample ``c * B' + b``.
        elements: one group element per sample of ``moved``.
        copies: how many copies.
        graphs: which samples of the batch were copied, ``(B',)`` (``None``: all of them, in order).
        nodes: the batch's node ids in those graphs (graph data with ``graphs`` set; else ``None``).
        tiled: the copies before the action (the fields the action left alone are shared with it).
    """

    moved: AnyData
    elements: Element
    copies: int
    graphs: Tensor | None = None
    nodes: Tensor | None = None
    tiled: AnyData | None = None

    def part(self, first: int, count: int, template: AnyData) -> AnyData:
        """Copies ``first`` to ``first + count - 1`` of ``moved``, as one batch.

        ``template`` is the copied samples tiled ``count`` times (its structure: batch vector, offsets, fields
        the action leaves alone); only the fields the action changed are cut out of ``moved``.
        """
        return take_copies(self.moved, self.copies, first, count, template, self.tiled)

    def template(self, data: AnyData, count: int, spec: Spec | None = None) -> AnyData:
        """The copied samples of ``data`` tiled ``count`` times: the structure :meth:`part` fills in."""
        one = data if self.graphs is None or not is_graph(data) else gather_graphs(data, self.graphs)[0]
        return one if count == 1 else repeat(one, count, spec)

    def originals(self, data: AnyData) -> AnyData:
        """The samples of ``data`` that were copied, once each, in the order of one copy (``data`` if all)."""
        if self.graphs is None:
            return data
        if self.copies == 1 and self.tiled is not None:
            return self.tiled
        return take_graphs(data, self.graphs.cpu())[0] if is_graph(data) else data[self.graphs]

    def alone(self) -> Copies:
        """These copies described against :meth:`originals` (every sample copied) instead of the whole batch."""
        return replace(self, graphs=None, nodes=None)

    def select(self, values: Tensor, level: str) -> Tensor:
        """The rows of ``values`` (node- or sample-level, of the whole batch) that were copied."""
        if self.graphs is None:
            return values
        if level == "node" and self.nodes is not None:
            return values[self.nodes]
        return values[self.graphs]


def all_elements(group: Group, data: AnyData) -> tuple[Element, int]:
    """Every element of a finite group, for each sample of ``data``: copy ``c`` uses element ``c``."""
    elements = group.elements()
    if elements is None:
        raise ValueError(f"group {group}: expected a finite group to enumerate (n_samples=None), got an infinite one")
    m = group.size(elements)
    return on_device_of(group.take(elements, torch.arange(m).repeat_interleave(num_graphs(data))), data), m


def copies_needed(group: Group, n_samples: int) -> int:
    """``n_samples`` rounded up to a multiple of the group's coset count (O(3): 2), so every coset is measured."""
    return -(-n_samples // group.num_cosets) * group.num_cosets


def graph_run(total: int, fraction: float, generator: torch.Generator | None = None) -> Tensor | None:
    """A share ``fraction`` of ``total`` samples to copy: a run of consecutive samples from a random start, wrapping
    at the end, ``(max(1, round(fraction * total)),)`` on the CPU; ``None`` (all of them) for ``fraction >= 1``.

    Every sample is copied with probability ``fraction``, as for a random subset, and the run is a slice of the
    batch's fields, not a gather. Loaders shuffle, so neighbours in a batch are as random as any subset.
    """
    if fraction >= 1:
        return None
    keep = max(1, round(fraction * total))
    start = int(torch.randint(total, (1,), generator=generator))
    return (start + torch.arange(keep)) % total


def make_copies(
    data: AnyData,
    group: Group,
    spec: Spec,
    n_samples: int | None = 1,
    generator: torch.Generator | None = None,
    elements: Element | None = None,
    graphs: Tensor | None = None,
    cover_cosets: bool = True,
) -> Copies:
    """Transformed copies of ``data`` (or of its samples ``graphs``).

    Args:
        n_samples: copies with random elements; ``None`` enumerates a finite group (one copy per element).
        elements: use these elements instead (one per sample of the copies, copy-major); ``n_samples`` is
            then the number of copies they make.
        graphs: copy only these samples of ``data`` (e.g. :func:`graph_run`, for cheaper regularization).
        cover_cosets: measuring: copy ``c`` takes its element from coset ``c % group.num_cosets`` (both
            proper and improper elements of O(3) every time); training samples the whole group at random.
    """
    if elements is None and n_samples is None:
        chosen = data if graphs is None else _pick(data, graphs)
        elements, n_samples = all_elements(group, chosen)
    if n_samples is None or n_samples < 1:
        raise ValueError(f"n_samples: expected an int >= 1 (or None for all elements), got {n_samples}")
    nodes, picked = None, graphs  # picked stays where the caller made it (the CPU): read without a device sync
    if graphs is not None:
        graphs = graphs.to(data_device(data))  # Copies.select indexes the model's outputs with it
    if graphs is None and n_samples == 1:
        tiled = data  # actions never write in place, so the batch itself can be moved
    elif graphs is None:
        tiled = repeat(data, n_samples, spec=spec)  # graph b of copy c lands at c * B + b
    elif is_graph(data):
        # One gather picks the graphs and tiles the copies: graph b of copy c lands at c * len(chosen) + b
        # (a run of consecutive graphs, as the regularizer picks, is sliced instead).
        tiled, nodes = take_graphs(data, picked.repeat(n_samples), spec=spec)
        nodes = nodes[: nodes.numel() // n_samples]
    else:
        tiled = repeat(data[graphs], n_samples, spec=spec)
    if elements is None:
        if cover_cosets:
            elements = group.sample_copies(tiled, n_samples, generator)
        else:
            elements = group.sample_like(tiled, generator)
    return Copies(group.act(elements, tiled, spec), elements, n_samples, graphs, nodes, tiled)


def _pick(data: AnyData, graphs: Tensor) -> AnyData:
    return gather_graphs(data, graphs)[0] if is_graph(data) else data[graphs]
