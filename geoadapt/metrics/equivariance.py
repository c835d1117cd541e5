"""Equivariance of any model on any batch: relative error, score, prediction consistency.

All copies of a batch are stacked into ONE forward pass: the original and ``K`` transformed copies
become a single PyG batch (or a single tensor batch), so measuring costs one large forward instead of
``K + 1`` small ones.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch_geometric.data import Data

from geoadapt.groups.base import Element, Group
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, concat, graph_index, num_graphs, repeat

Model = Callable[[AnyData], Tensor]
EPS = 1e-12


@dataclass
class Transformed:
    """The outputs needed to compare ``f(g·x)`` with ``ρ(g) f(x)`` for ``K`` copies of a batch.

    Attributes:
        fx: ``f(x)``, ``(rows, dim)`` (rows: graphs, nodes or point-cloud samples).
        fgx: ``f(g·x)`` for the copies, ``(K * rows, dim)``.
        expected: ``ρ_out(g) f(x)`` for the copies, ``(K * rows, dim)``.
        row_graph: graph id of each of the ``K * rows`` rows, in ``[0, K * B)``.
        elements: the group elements used, one per graph of the stacked copies.
        copies: ``K``.
    """

    fx: Tensor
    fgx: Tensor
    expected: Tensor
    row_graph: Tensor
    elements: Element
    copies: int


def finite_elements_per_graph(group: Group, data: AnyData) -> tuple[Element, int]:
    """Every element of a finite group, once for each graph: copy ``c`` uses element ``c``."""
    elements = group.elements()
    if elements is None:
        raise ValueError(f"group {group}: expected a finite group to enumerate, got an infinite one")
    m = group.size(elements)
    return group.take(elements, torch.arange(m).repeat_interleave(num_graphs(data))), m


def transformed_outputs(
    model: Model,
    data: AnyData,
    group: Group,
    spec: Spec,
    n_samples: int | None = 8,
    generator: torch.Generator | None = None,
) -> Transformed:
    """Run ``model`` once on ``data`` stacked with ``n_samples`` transformed copies of it.

    ``n_samples=None`` on a finite group uses every element (each graph sees the whole group).
    """
    if n_samples is None:
        elements, copies = finite_elements_per_graph(group, data)
        stacked = repeat(data, copies)
    else:
        if n_samples < 1:
            raise ValueError(f"n_samples: expected >= 1 (or None for all elements), got {n_samples}")
        copies = n_samples
        stacked = repeat(data, copies)
        elements = group.sample_like(stacked, generator)
    moved = group.act(elements, stacked, spec)
    out = model(concat([data, moved]))
    if not isinstance(out, Tensor):
        raise TypeError(f"model output: expected a Tensor, got {type(out).__name__}")
    if isinstance(data, Tensor):
        B = data.shape[0]
        fx, fgx = out[:B], out[B:]
        if out.dim() == 3:  # point-cloud node outputs (B, N, d): compare per point, norm per sample
            N, d = out.shape[1:]
            expected = group.act_output(elements, fx.repeat(copies, 1, 1), spec).reshape(-1, d)
            row_graph = torch.arange(copies * B, device=out.device).repeat_interleave(N)
            return Transformed(fx.reshape(-1, d), fgx.reshape(-1, d), expected, row_graph, elements, copies)
        node_graph = None
        row_graph = torch.arange(copies * B, device=out.device)
    else:
        if spec.output_level == "node":
            rows = data.num_nodes
            node_graph = graph_index(stacked)
            row_graph = node_graph
        else:
            rows = num_graphs(data)
            node_graph = None
            row_graph = torch.arange(copies * rows, device=out.device)
        if out.shape[0] != rows * (copies + 1):
            raise ValueError(
                f"model output: expected {rows * (copies + 1)} rows "
                f"({spec.output_level} level, {copies + 1} stacked copies), got {out.shape[0]}"
            )
        fx, fgx = out[:rows], out[rows:]
    expected = group.act_output(elements, fx.repeat(copies, *([1] * (fx.dim() - 1))), spec, node_graph)
    return Transformed(fx, fgx, expected, row_graph, elements, copies)


def relative_error(t: Transformed) -> Tensor:
    """``||f(g·x) - ρ(g) f(x)|| / (||f(x)|| + eps)`` per copy and graph: ``(K, B)``.

    Norms run over all output rows of a graph (all its nodes for node-level outputs).
    """
    n_graphs = int(t.row_graph.max()) + 1 if t.row_graph.numel() else 0
    diff = (t.fgx - t.expected).reshape(t.fgx.shape[0], -1).pow(2).sum(-1)
    ref = t.expected.reshape(t.expected.shape[0], -1).pow(2).sum(-1)
    num = torch.zeros(n_graphs, dtype=diff.dtype, device=diff.device).index_add_(0, t.row_graph, diff)
    den = torch.zeros(n_graphs, dtype=diff.dtype, device=diff.device).index_add_(0, t.row_graph, ref)
    return (num.sqrt() / (den.sqrt() + EPS)).reshape(t.copies, -1)


def _batches(data: AnyData | Iterable[AnyData]) -> Iterable[AnyData]:
    if isinstance(data, (Tensor, Data)):
        return [data]
    return data


def _evaluating(model: Model) -> bool:
    was_training = bool(getattr(model, "training", False))
    if isinstance(model, torch.nn.Module):
        model.eval()
    return was_training


@torch.no_grad()
def equivariance_error(
    model: Model,
    data: AnyData | Iterable[AnyData],
    group: Group,
    spec: Spec,
    n_samples: int | None = 8,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per-sample relative equivariance error of ``model`` under ``group``.

    ``err[k, b] = ||f(g_kb · x_b) - ρ_out(g_kb) f(x_b)|| / (||f(x_b)|| + eps)``, computed with the
    original batch and its ``n_samples`` transformed copies stacked into one forward pass, in eval mode.

    Args:
        model: maps a batch (PyG ``Batch``, point cloud ``(B, N, 3)`` or images ``(B, C, H, W)``) to
            outputs ``(rows, spec.output.dim)``.
        data: one batch, or an iterable of batches (e.g. a ``DataLoader``).
        group: the symmetry. ``n_samples=None`` enumerates a finite group.
        spec: irreps of the input fields and of the output.

    Returns:
        ``(n_samples, num_graphs)`` errors (graphs of all batches concatenated on dim 1).
    """
    was_training = _evaluating(model)
    try:
        errors = [
            relative_error(transformed_outputs(model, b, group, spec, n_samples, generator)) for b in _batches(data)
        ]
    finally:
        if was_training and isinstance(model, torch.nn.Module):
            model.train()
    return torch.cat(errors, dim=1)


def score_from_error(error: Tensor) -> float:
    """Equivariance score ``mean(exp(-err))`` in ``(0, 1]``: 1 for an exact model, ``≈ 1 - err`` for small errors."""
    return float(torch.exp(-error.to(torch.float64)).mean())


def equivariance_score(
    model: Model,
    data: AnyData | Iterable[AnyData],
    group: Group,
    spec: Spec,
    n_samples: int | None = 8,
    generator: torch.Generator | None = None,
) -> float:
    """Equivariance score in ``[0, 1]``: ``mean_{x, g} exp(-err(x, g))`` with ``err`` the relative error.

    1 means exactly equivariant; a relative error of 1% gives about 0.99, 100% about 0.37.
    """
    return score_from_error(equivariance_error(model, data, group, spec, n_samples, generator))


@torch.no_grad()
def prediction_consistency(
    model: Model,
    data: AnyData | Iterable[AnyData],
    group: Group,
    spec: Spec,
    n_samples: int | None = 8,
    generator: torch.Generator | None = None,
) -> float:
    """Fraction of transformed inputs whose predicted class (argmax of the logits) is unchanged."""
    was_training = _evaluating(model)
    agree, total = 0, 0
    try:
        for b in _batches(data):
            t = transformed_outputs(model, b, group, spec, n_samples, generator)
            same = t.fgx.argmax(-1) == t.fx.argmax(-1).repeat(t.copies)
            agree += int(same.sum())
            total += same.numel()
    finally:
        if was_training and isinstance(model, torch.nn.Module):
            model.train()
    return agree / max(total, 1)


@dataclass
class GroupAccuracy:
    """Accuracy of a classifier under every element of a finite group."""

    per_element: list[float]

    @property
    def mean(self) -> float:
        """Group-averaged accuracy (e.g. "C8-averaged accuracy")."""
        return sum(self.per_element) / len(self.per_element)

    @property
    def worst(self) -> float:
        """Accuracy under the worst group element."""
        return min(self.per_element)


@torch.no_grad()
def group_accuracy(
    model: Model,
    data: AnyData | Iterable[AnyData],
    labels: Tensor | Iterable[Tensor] | None,
    group: Group,
    spec: Spec,
) -> GroupAccuracy:
    """Accuracy under each element of a finite ``group`` (one stacked forward per batch).

    ``labels``: ``(B,)`` class ids, an iterable of them per batch, or ``None`` to read ``data.y``.
    """
    if not group.is_finite:
        raise ValueError(f"group {group}: expected a finite group, got an infinite one")
    was_training = _evaluating(model)
    correct: Tensor | None = None
    total = 0
    label_iter = iter(labels) if labels is not None and not isinstance(labels, Tensor) else None
    try:
        for b in _batches(data):
            y = labels if isinstance(labels, Tensor) else next(label_iter) if label_iter else b.y
            y = y.reshape(-1)
            elements, m = finite_elements_per_graph(group, b)
            out = model(group.act(elements, repeat(b, m), spec))
            hits = (out.argmax(-1) == y.repeat(m)).reshape(m, -1).sum(1)
            correct = hits if correct is None else correct + hits
            total += y.numel()
    finally:
        if was_training and isinstance(model, torch.nn.Module):
            model.train()
    return GroupAccuracy([float(c) / total for c in correct])


def group_averaged_accuracy(model: Model, data: AnyData, labels: Tensor | None, group: Group, spec: Spec) -> float:
    """Accuracy averaged over all elements of a finite group."""
    return group_accuracy(model, data, labels, group, spec).mean


def worst_case_accuracy(model: Model, data: AnyData, labels: Tensor | None, group: Group, spec: Spec) -> float:
    """Accuracy under the worst element of a finite group."""
    return group_accuracy(model, data, labels, group, spec).worst


@dataclass
class EquivarianceReport:
    """Summary of one model under one group."""

    group: str
    mean_error: float
    max_error: float
    score: float
    consistency: float | None = None

    def as_row(self) -> list[str]:
        """Cells for a text table."""
        cons = "-" if self.consistency is None else f"{self.consistency:.3f}"
        return [
            self.group,
            f"{self.mean_error:.2e}",
            f"{self.max_error:.2e}",
            f"{self.score:.4f}",
            cons,
        ]


def equivariance_report(
    model: Model,
    data: AnyData | Iterable[AnyData],
    group: Group,
    spec: Spec,
    n_samples: int | None = 8,
    generator: torch.Generator | None = None,
    classifier: bool = False,
) -> EquivarianceReport:
    """Error (mean, max), score and, for classifiers, prediction consistency under ``group``."""
    err = equivariance_error(model, data, group, spec, n_samples, generator)
    cons = prediction_consistency(model, data, group, spec, n_samples, generator) if classifier else None
    mean = float(err.mean()) if err.numel() else math.nan
    return EquivarianceReport(repr(group), mean, float(err.max()), score_from_error(err), cons)


@torch.no_grad()
def error_vs_angle(model: Model, data: AnyData, spec: Spec, angles: Tensor) -> Tensor:
    """Mean relative error under rotations by each angle (radians) about the z axis: ``(len(angles),)``.

    Graphs and point clouds rotate in 3D about z; images rotate in the plane (interpolated between
    multiples of 90°). One stacked forward pass for all angles.
    """
    from geoadapt.groups.planar import SO2

    was_training = _evaluating(model)
    try:
        n, copies = num_graphs(data), angles.numel()
        stacked = repeat(data, copies)
        elements = angles.to(torch.float64).repeat_interleave(n)
        moved = SO2().act(elements, stacked, spec)
        out = model(concat([data, moved]))
        rows = data.num_nodes if spec.output_level == "node" and not isinstance(data, Tensor) else n
        fx, fgx = out[:rows], out[rows:]
        node_graph = graph_index(stacked) if spec.output_level == "node" and not isinstance(data, Tensor) else None
        expected = SO2().act_output(elements, fx.repeat(copies, *([1] * (fx.dim() - 1))), spec, node_graph)
        row_graph = node_graph if node_graph is not None else torch.arange(copies * n)
        err = relative_error(Transformed(fx, fgx, expected, row_graph, elements, copies))
    finally:
        if was_training and isinstance(model, torch.nn.Module):
            model.train()
    return err.mean(1)
