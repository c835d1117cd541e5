"""Equivariance of any model on any batch: absolute and relative error, score, prediction consistency.

Every function here measures through the engine, :mod:`geoadapt.equivariance` (the one definition of the
error): the original batch and its transformed copies run stacked in as few forward passes as the model's node
budget allows (or one copy per forward for models that say so), in eval mode.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Data

from geoadapt.devices import check_same_device, data_device, full_precision
from geoadapt.equivariance import (
    Comparison,
    OutputScale,
    as_scale,
    block_scale,
    compare,
    copies_needed,
    evaluating,
    feature_spec,
    layer_irreps,
    make_copies,
    measured_rows,
    relative_from_squared,
    run_copies,
    transformed_outputs,
)
from geoadapt.groups.base import Group
from geoadapt.groups.planar import SO2
from geoadapt.metrics.task import predicted_class
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, num_graphs

Model = nn.Module


def _batches(data: AnyData | Iterable[AnyData]) -> Iterable[AnyData]:
    if isinstance(data, (Tensor, Data)):
        return [data]
    return data


@dataclass
class EquivarianceMeasurement:
    """One model under one group on some samples (see :mod:`geoadapt.equivariance` for the definitions).

    Attributes:
        group: the group's name.
        relative: relative error ``r`` per copy and sample, ``(K, B)``.
        absolute: absolute error ``a_j`` per copy, sample and output block, ``(K, B, n_blocks)``, output units.
        scale: the block scales ``s_j`` the relative error divides by, ``(n_blocks,)``.
        blocks: the output blocks (irreps entries), e.g. ``["1x0e", "1x1o"]``.
        consistency: for classifiers, the fraction of transformed inputs whose predicted class is unchanged.
    """

    group: str
    relative: Tensor
    absolute: Tensor
    scale: Tensor
    blocks: list[str]
    consistency: float | None = None

    @property
    def error(self) -> float:
        """Mean relative error."""
        return float(self.relative.mean()) if self.relative.numel() else math.nan

    @property
    def max_error(self) -> float:
        """Largest relative error."""
        return float(self.relative.max()) if self.relative.numel() else math.nan

    @property
    def score(self) -> float:
        """``mean exp(-r)`` in ``(0, 1]``."""
        return score_from_error(self.relative)

    def absolute_by_block(self) -> dict[str, float]:
        """Mean absolute error of each output block, in output units."""
        means = self.absolute.reshape(-1, len(self.blocks)).mean(0)
        return {block: float(m) for block, m in zip(self.blocks, means)}


def measure_equivariance(
    model: Model,
    data: AnyData | Iterable[AnyData],
    group: Group,
    spec: Spec,
    n_samples: int | None = 8,
    generator: torch.Generator | None = None,
    scale: Tensor | float | Sequence[float] | None = None,
    classifier: bool = False,
    stack: bool | None = None,
) -> EquivarianceMeasurement:
    """Measure ``model`` under ``group`` on a batch or an iterable of batches (e.g. a ``DataLoader``).

    Args:
        n_samples: random group elements per sample (rounded up so every coset, e.g. both parities of O(3),
            is measured); ``None`` enumerates a finite group.
        scale: block scales to divide by (one number or one per output block); default: the spread of the
            model's outputs over all the samples measured.
        classifier: also measure prediction consistency (outputs are logits).
        stack: copies in the batch's forward pass (``True``), in their own (``False``), or as the model says
            (``None``: stacked under its node budget, :func:`~geoadapt.equivariance.forward_plan`).
    """
    squared, scales, consistent, total = [], OutputScale(spec.output), 0, 0
    with evaluating(model):
        for i, batch in enumerate(_batches(data)):
            if i == 0 and isinstance(model, nn.Module):
                check_same_device(model, batch)  # a mismatch is an error here, never a silent copy
            # Measured in the dtypes of the model and data even inside an autocast region: errors of
            # 1e-10 in float64 are not visible in bfloat16.
            with full_precision(data_device(batch)):
                c = transformed_outputs(model, batch, group, spec, n_samples, generator, stack=stack)
            squared.append(c.squared_error())
            scales.add(c.fx)
            if classifier:
                same = predicted_class(c.fgx) == predicted_class(c.expected)
                consistent, total = consistent + int(same.sum()), total + same.numel()
    squared_all = torch.cat(squared, dim=1)
    block_scales = scales.value() if scale is None else as_scale(scale, spec.output)
    return EquivarianceMeasurement(
        group=repr(group),
        relative=relative_from_squared(squared_all, block_scales, spec.output),
        absolute=squared_all.sqrt(),
        scale=block_scales,
        blocks=[f"{mul}x{ir}" for mul, ir in spec.output],
        consistency=consistent / total if classifier and total else None,
    )


def equivariance_error(
    model: Model,
    data: AnyData | Iterable[AnyData],
    group: Group,
    spec: Spec,
    n_samples: int | None = 8,
    generator: torch.Generator | None = None,
    scale: Tensor | float | Sequence[float] | None = None,
    stack: bool | None = None,
) -> Tensor:
    """Relative equivariance error of ``model`` under ``group``, per copy and sample: ``(K, B)``.

    ``err[k, b] = sqrt(Σ_j d_j (a_kbj / s_j)^2 / Σ_j d_j)`` with ``a_kbj`` the RMS of
    ``f(g_kb · x_b) - ρ_out(g_kb) f(x_b)`` over output block ``j`` and ``s_j`` the spread of the outputs
    (definitions in :mod:`geoadapt.equivariance`). The original and the transformed copies run stacked in
    as few forward passes as the model's node budget allows (:func:`~geoadapt.equivariance.forward_plan`),
    in eval mode.

    Args:
        model: maps a batch (PyG ``Batch``, point cloud ``(B, N, 3)`` or images ``(B, C, H, W)``) to
            outputs ``(rows, spec.output.dim)``.
        data: one batch, or an iterable of batches (graphs of all batches concatenated on dim 1).
        group: the symmetry. ``n_samples=None`` enumerates a finite group.
        spec: irreps of the input fields and of the output.
        scale: the block scales ``s_j`` to use instead of the outputs' spread.
        stack: copies in one forward with the batch, one copy per forward, or as the model declares (``None``).
    """
    return measure_equivariance(model, data, group, spec, n_samples, generator, scale, stack=stack).relative


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
    """Equivariance score in ``(0, 1]``: ``mean_{x, g} exp(-err(x, g))`` with ``err`` the relative error.

    1 means exactly equivariant; a relative error of 1% gives about 0.99, 100% about 0.37.
    """
    return measure_equivariance(model, data, group, spec, n_samples, generator).score


def prediction_consistency(
    model: Model,
    data: AnyData | Iterable[AnyData],
    group: Group,
    spec: Spec,
    n_samples: int | None = 8,
    generator: torch.Generator | None = None,
) -> float:
    """Fraction of transformed inputs whose predicted class (:func:`~geoadapt.metrics.task.predicted_class`)
    is that of the original input."""
    return measure_equivariance(model, data, group, spec, n_samples, generator, classifier=True).consistency


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
    correct: Tensor | None = None
    total = 0
    label_iter = iter(labels) if labels is not None and not isinstance(labels, Tensor) else None
    with evaluating(model):
        for b in _batches(data):
            y = labels if isinstance(labels, Tensor) else next(label_iter) if label_iter else b.y
            y = y.reshape(-1)
            copies = make_copies(b, group, spec, n_samples=None)
            out = measured_rows(model, copies.moved, spec)  # the identity is a copy: no forward of b itself
            hits = (predicted_class(out) == y.repeat(copies.copies)).reshape(copies.copies, -1).sum(1)
            correct = hits if correct is None else correct + hits
            total += y.numel()
    return GroupAccuracy([float(c) / total for c in correct])


def group_averaged_accuracy(model: Model, data: AnyData, labels: Tensor | None, group: Group, spec: Spec) -> float:
    """Accuracy averaged over all elements of a finite group."""
    return group_accuracy(model, data, labels, group, spec).mean


def worst_case_accuracy(model: Model, data: AnyData, labels: Tensor | None, group: Group, spec: Spec) -> float:
    """Accuracy under the worst element of a finite group."""
    return group_accuracy(model, data, labels, group, spec).worst


@dataclass
class EquivarianceReport:
    """Summary of one model under one group: relative error (mean, max), score, absolute error per block."""

    group: str
    mean_error: float
    max_error: float
    score: float
    consistency: float | None = None
    absolute: dict[str, float] | None = None

    def as_row(self) -> list[str]:
        """Cells for a text table."""
        cons = "-" if self.consistency is None else f"{self.consistency:.3f}"
        return [self.group, f"{self.mean_error:.2e}", f"{self.max_error:.2e}", f"{self.score:.4f}", cons]


def equivariance_report(
    model: Model,
    data: AnyData | Iterable[AnyData],
    group: Group,
    spec: Spec,
    n_samples: int | None = 8,
    generator: torch.Generator | None = None,
    classifier: bool = False,
) -> EquivarianceReport:
    """Error (mean, max), score, absolute error per block and, for classifiers, prediction consistency."""
    m = measure_equivariance(model, data, group, spec, n_samples, generator, classifier=classifier)
    return EquivarianceReport(m.group, m.error, m.max_error, m.score, m.consistency, m.absolute_by_block())


def feature_errors(
    model: Model,
    data: AnyData,
    group: Group,
    spec: Spec,
    layers: Sequence[str] | dict[str, str | None],
    n_samples: int = 4,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Mean relative error of the features of named submodules of ``model`` (one forward for all layers).

    A layer's irreps come from ``layers[name]``, else from the submodule's ``irreps_out`` (e3nn), else all
    its channels count as invariant scalars; node or graph level from its row count. The error is the one
    of the outputs, with the features' own spread as the scale.
    """
    wanted = dict(layers) if isinstance(layers, dict) else {name: None for name in layers}
    copies = make_copies(data, group, spec, copies_needed(group, n_samples), generator)
    with evaluating(model):
        out = run_copies(model, data, [copies], spec, layers=list(wanted), measuring=True).sets[0]
    irreps = layer_irreps(model, wanted)
    errors = {}
    for name in wanted:
        orig, moved = out.features[name]
        layer_spec = feature_spec(irreps[name], orig, data)
        c = compare(orig, moved, out.copies, out.data, group, layer_spec)
        errors[name] = float(c.relative_error(block_scale(orig, layer_spec.output)).mean())
    return errors


def error_vs_angle(
    model: Model, data: AnyData, spec: Spec, angles: Tensor, scale: Tensor | float | None = None
) -> Tensor:
    """Mean relative error under rotations by each angle (radians) about the z axis: ``(len(angles),)``.

    The same error as :func:`equivariance_error` (same scale: the outputs' spread on ``data``). Graphs and
    point clouds rotate in 3D about z; images in the plane (interpolated between multiples of 90°). The
    copies for all angles are stacked (:func:`~geoadapt.equivariance.forward_plan`).
    """
    elements = angles.to(torch.float64).repeat_interleave(num_graphs(data))
    with evaluating(model):
        c: Comparison = transformed_outputs(model, data, SO2(), spec, angles.numel(), elements=elements)
    block_scales = OutputScale(spec.output).add(c.fx).value() if scale is None else as_scale(scale, spec.output)
    return c.relative_error(block_scales).mean(1)
