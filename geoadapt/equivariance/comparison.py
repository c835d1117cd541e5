"""``f(g·x)`` next to ``ρ_out(g) f(x)``: the comparison of one set of copies, per copy, sample and output block.

The definitions (absolute error ``a_j``, block scales ``s_j``, relative error ``r``): :mod:`geoadapt.equivariance`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from e3nn import o3
from torch import Tensor

from geoadapt.equivariance.copies import Copies
from geoadapt.equivariance.divergences import js_logits, kl_logits
from geoadapt.groups.base import Element, Group
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, graph_index, is_graph, num_graphs


@functools.lru_cache(maxsize=64)
def block_matrix(irreps: o3.Irreps, dtype: torch.dtype, device: torch.device | None = None) -> Tensor:
    """``(dim, n_blocks)`` matrix that averages the components of each entry of ``irreps`` (made once per
    irreps, dtype and device: every training step compares with it; treat it as read-only)."""
    M = torch.zeros(irreps.dim, len(irreps), dtype=dtype, device=device)
    for j, ((mul, ir), sl) in enumerate(zip(irreps, irreps.slices())):
        M[sl, j] = 1.0 / (mul * ir.dim)
    return M


def block_dims(irreps: o3.Irreps) -> list[int]:
    """Dimension ``mul * (2l + 1)`` of each entry of ``irreps``."""
    return [mul * ir.dim for mul, ir in irreps]


@dataclass
class Comparison:
    """``f(g·x)`` next to ``ρ_out(g) f(x)`` for ``copies`` transformed copies of ``samples`` samples.

    Attributes:
        fx: ``f(x)`` of the compared samples, ``(rows, dim)`` (rows: samples, or their nodes / points).
        fgx: ``f(g·x)``, ``(copies * rows, dim)``, copy-major.
        expected: ``ρ_out(g) f(x)``, same shape as ``fgx``.
        row_graph: sample id of each row of ``fgx``, in ``[0, copies * samples)``.
        elements: the group elements, one per sample of the copies.
        copies, samples: ``K`` and ``B``.
        irreps: irreps of one output row (the blocks of the error).
    """

    fx: Tensor
    fgx: Tensor
    expected: Tensor
    row_graph: Tensor
    elements: Element
    copies: int
    samples: int
    irreps: o3.Irreps
    one_row_per_sample: bool = False

    def _per_sample(self, per_row: Tensor) -> Tensor:
        """Mean over each sample's rows of a ``(rows, ...)`` tensor: ``(copies, samples, ...)``."""
        n = self.copies * self.samples
        if per_row.shape[0] == n and self.one_row_per_sample:
            return per_row.reshape(self.copies, self.samples, -1)  # graph-level outputs: nothing to average
        sums = per_row.new_zeros((n, *per_row.shape[1:])).index_add_(0, self.row_graph, per_row)
        counts = torch.bincount(self.row_graph, minlength=n).clamp_min(1).to(per_row.dtype)
        return (sums / counts.reshape(-1, *([1] * (per_row.dim() - 1)))).reshape(self.copies, self.samples, -1)

    def squared_error(self) -> Tensor:
        """``a_j^2``: mean squared difference per copy, sample and block, ``(K, B, n_blocks)`` (differentiable)."""
        diff2 = (self.fgx - self.expected).pow(2)
        return self._per_sample(diff2 @ block_matrix(self.irreps, diff2.dtype, diff2.device))

    def absolute_error(self) -> Tensor:
        """``a_j``: RMS difference per copy, sample and block, in output units: ``(K, B, n_blocks)``."""
        return self.squared_error().sqrt()

    def relative_error(self, scale: Tensor) -> Tensor:
        """``r``: the relative error per copy and sample, ``(K, B)``, for block scales ``(n_blocks,)``."""
        return relative_from_squared(self.squared_error(), scale, self.irreps)

    def kl_divergence(self) -> Tensor:
        """``KL(p(x) || p(g·x))`` per copy and sample, ``(K, B)``, between predictive distributions of logits.

        One logit is a Bernoulli (sigmoid); several are a categorical (softmax).
        """
        return self._per_sample(kl_logits(self.expected, self.fgx)[:, None])[..., 0]

    def js_divergence(self) -> Tensor:
        """Jensen-Shannon divergence between the predictive distributions of ``f(x)`` and ``f(g·x)``, ``(K, B)``."""
        return self._per_sample(js_logits(self.expected, self.fgx)[:, None])[..., 0]


def relative_from_squared(squared: Tensor, scale: Tensor, irreps: o3.Irreps) -> Tensor:
    """``r`` from ``a_j^2`` ``(..., n_blocks)`` and block scales ``(n_blocks,)``: ``(...)``."""
    dims = torch.tensor(block_dims(irreps), dtype=squared.dtype, device=squared.device)
    scale = scale.to(squared.dtype).to(squared.device)
    return ((squared / scale.pow(2)) * dims).sum(-1).div(dims.sum()).sqrt()


def compare(fx: Tensor, fgx: Tensor, copies: Copies, data: AnyData, group: Group, spec: Spec) -> Comparison:
    """Build the :class:`Comparison` of outputs ``fx`` (the whole batch) and ``fgx`` (of ``copies``).

    ``spec.output_level`` says whether graph-data rows are graphs or nodes; point-cloud outputs
    ``(B, N, dim)`` compare per point and aggregate per sample.
    """
    K = copies.copies
    if is_graph(data):
        node_level = spec.output_level == "node"
        fx = copies.select(fx, "node" if node_level else "graph")
        samples = num_graphs(data) if copies.graphs is None else copies.graphs.numel()
        node_graph = graph_index(copies.moved) if node_level else None
        if fgx.shape[0] != K * fx.shape[0]:
            raise ValueError(
                f"model output: expected {K * fx.shape[0]} rows ({spec.output_level} level, {K} copies), "
                f"got {fgx.shape[0]}"
            )
        expected = group.act_output(copies.elements, fx.repeat(K, 1), spec, node_graph)
        row_graph = node_graph if node_level else torch.arange(K * samples, device=fgx.device)
    else:
        fx = copies.select(fx, "graph")
        samples = fx.shape[0]
        expected = group.act_output(copies.elements, fx.repeat(K, *([1] * (fx.dim() - 1))), spec)
        row_graph = torch.arange(K * samples, device=fgx.device)
        if fx.dim() == 3:  # point-cloud node outputs (B, N, d): one row per point
            points, d = fx.shape[1:]
            row_graph = row_graph.repeat_interleave(points)
            fx, fgx, expected = fx.reshape(-1, d), fgx.reshape(-1, d), expected.reshape(-1, d)
    one_row = not (is_graph(data) and spec.output_level == "node") and fx.dim() == 2 and fx.shape[0] == samples
    return Comparison(fx, fgx, expected, row_graph.to(fgx.device), copies.elements, K, samples, spec.output, one_row)
