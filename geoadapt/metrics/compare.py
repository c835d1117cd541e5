"""One comparison path: ``f(g·x)`` against ``ρ_out(g) f(x)``.

Everything that measures or penalizes equivariance goes through this module: the metrics (without
gradients), the regularizers (with gradients), the report card and the plots. It builds the transformed
copies of a batch, runs the model on the batch and its copies (in one stacked forward or in separate ones),
and compares. There is one definition of the error:

.. math::

    Δ = f(g·x) - ρ_{out}(g) f(x)

    a_j = \\sqrt{\\operatorname{mean} Δ^2}   \\quad \\text{over the rows of one sample and the components of block } j

    s_j = \\max\\left(\\sqrt{\\operatorname{mean} (f(x) - c_j)^2},\\ \\sqrt{ε}\\right)
          \\quad \\text{over every row measured}

    r = \\sqrt{\\textstyle\\sum_j d_j (a_j / s_j)^2 / \\sum_j d_j}

A block ``j`` is one entry ``mul x ir`` of ``spec.output`` (``d_j`` its dimension). ``a_j`` is the
**absolute error**, in output units. ``s_j`` is the **scale** of the block: the RMS spread of the
model's outputs over all samples measured, centered (``c_j`` = per-channel mean) for ``0e`` entries and
not centered for the others (a constant vector is itself not equivariant, and its size is what a rotation
moves); ``ε`` is the machine epsilon of the output dtype (``√ε`` is 3e-4 in float32, 1.5e-8 in float64).
``r`` is the **relative error** of one sample under one group element.

Why this scale, rather than the sample's own ``||f(x)||``: a per-sample norm vanishes for outputs that are
zero by symmetry (the dipole of a centrosymmetric molecule: relative errors of 1e5 from round-off) and
grows with an offset (an energy model with outputs near -1000 would look invariant whatever it does). The
spread of the outputs is what the signal varies by; it does not move when a constant is added to an
invariant output and is the same for every sample of a batch. It vanishes only when every output is the
same, where the floor ``√ε`` makes round-off count as exact. With a single ``0e`` row there is no spread,
so the uncentered RMS is used. Pass ``scale=`` to normalize by a scale of your own (e.g. the target std).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from e3nn import o3
from torch import Tensor, nn

from geoadapt.devices import data_device
from geoadapt.groups.base import Element, Group, on_device_of
from geoadapt.spec import Spec
from geoadapt.structure import (
    AnyData,
    concat,
    gather_graphs,
    graph_index,
    is_graph,
    num_graphs,
    repeat,
    runs_under,
    take_copies,
    take_graphs,
)

DISTANCES = ("mse", "relative", "kl", "js")


# --- model outputs --------------------------------------------------------------------------------
def output_rows(out: object, spec: Spec) -> Tensor:
    """Model outputs as ``(rows, spec.output.dim)`` (point-cloud node outputs: ``(B, N, dim)``).

    A ``(rows,)`` output is accepted for a one-dimensional output (``1x0e``: the PyG habit of returning
    ``(B,)`` for a scalar target). Anything else that does not fit raises a ``ValueError`` naming the shapes.
    """
    if not isinstance(out, Tensor):
        raise TypeError(f"model output: expected a Tensor, got {type(out).__name__}")
    dim = spec.output.dim
    if out.dim() == 1 and dim == 1:
        return out[:, None]
    if out.dim() in (2, 3) and out.shape[-1] == dim:
        return out
    raise ValueError(f"model output: expected shape (rows, {dim}) for irreps {spec.output}, got {tuple(out.shape)}")


def should_stack(model: object) -> bool:
    """Whether copies should share the batch's forward pass.

    A model (or a wrapper around it, through ``.model``) may say so with a ``stack_copies`` attribute.
    Otherwise copies are stacked, except through batch norm in training mode: the copies would change the
    batch statistics, and so the task outputs ``f(x)``.
    """
    declared = _declared(model, "stack_copies")
    if declared is not _UNDECLARED:
        return bool(declared)
    if isinstance(model, nn.Module):
        norms = (nn.modules.batchnorm._BatchNorm,)
        return not any(isinstance(m, norms) and m.training for m in model.modules())
    return True


STACK_NODES = 4096
"""Most nodes one measuring forward holds (default): past a few thousand nodes a message-passing forward
gets slower per node on CPU (its activations leave the cache), so the copies of a large batch are split
over several forwards and the copies of a small one share a forward (benchmarks/equivariance_eval.py)."""


_UNDECLARED = object()


def _declared(model: object, name: str) -> object:
    """Attribute ``name`` of the model, or of a model it wraps (through ``.model``); ``_UNDECLARED`` if none has it."""
    inner = model
    while inner is not None:
        if hasattr(inner, name):
            return getattr(inner, name)
        inner = getattr(inner, "model", None)
    return _UNDECLARED


def stack_nodes(model: object) -> int:
    """Nodes one forward may hold when measuring: a ``stack_nodes`` attribute of the model (or of a model it
    wraps, through ``.model``), else :data:`STACK_NODES`. A batch larger than the budget runs alone."""
    return _node_budget(model, "stack_nodes", STACK_NODES)


def split_nodes(model: object) -> int | None:
    """Most nodes one measuring forward of ``model`` may hold on the CPU before a batch is cut into runs of
    consecutive graphs: a ``split_nodes`` attribute of the model (or of a model it wraps), else ``None`` (never
    cut). For models whose CPU forward gets slower per node as the batch grows (its activations leave the
    cache), several small forwards cost less than one large one."""
    return _node_budget(model, "split_nodes", None)


def _node_budget(model: object, name: str, default: int | None) -> int | None:
    """The model's ``name`` attribute (a node count), ``default`` where it declares none."""
    declared = _declared(model, name)
    if declared is _UNDECLARED or (declared is None and default is None):
        return default
    if isinstance(declared, bool) or not isinstance(declared, int) or declared < 1:
        also = " or None" if default is None else ""
        raise ValueError(f"{name}: expected an int >= 1 (nodes per forward){also}, got {declared!r}")
    return declared


def measured_rows(model: nn.Module, data: AnyData, spec: Spec) -> Tensor:
    """``output_rows(model(data))``, in runs of consecutive graphs of at most :func:`split_nodes` nodes where the
    model asks for it and ``data`` is a graph batch on the CPU (a graph larger than the budget runs alone)."""
    budget = split_nodes(model)
    if budget is None or not is_graph(data) or data_device(data).type != "cpu" or data.num_nodes <= budget:
        return output_rows(model(data), spec)
    return torch.cat([output_rows(model(run), spec) for run in runs_under(data, budget, spec)])


def forward_plan(model: object, data: AnyData, copies: int, stack: bool | None = None) -> list[int]:
    """How many copies each forward pass runs; the batch itself rides in the first (a leading 0: alone).

    ``stack=True``: one forward (``[K]``); ``False``: one copy per forward (``[0, 1, ..., 1]``); ``None``:
    as the model says (:func:`should_stack`), and for graphs the batch and its copies are spread evenly over
    as few forwards as keep each under :func:`stack_nodes` nodes (the batch alone when that costs no extra
    forward: its outputs then need no stacking).
    """
    if stack is None:
        stack = should_stack(model)
        if stack and is_graph(data):
            per_forward = stack_nodes(model) // max(int(data.num_nodes), 1)  # batch-sized slots per forward
            if per_forward < copies + 1:
                per_forward = max(per_forward, 1)
                together = -(-(copies + 1) // per_forward)
                if 1 + -(-copies // per_forward) <= together:
                    return [0] + _even(copies, together - 1)
                slots = _even(copies + 1, together)
                return [slots[0] - 1] + slots[1:]
    return [copies] if stack else [0] + [1] * copies


def _even(items: int, parts: int) -> list[int]:
    """``items`` split into ``parts`` sizes that differ by at most one, larger first."""
    return [items // parts + (i < items % parts) for i in range(parts)]


@contextmanager
def evaluating(model: object) -> Iterator[None]:
    """Eval mode without gradients inside the block; the model's training flags are restored afterwards."""
    modules = list(model.modules()) if isinstance(model, nn.Module) else []
    flags = [m.training for m in modules]
    if isinstance(model, nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in zip(modules, flags):
            m.training = flag


# --- transformed copies ---------------------------------------------------------------------------
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
        graphs: copy only these samples of ``data`` (random subsets for cheaper regularization).
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


# --- forward passes -------------------------------------------------------------------------------
class _Capture:
    """Forward hooks that record the outputs of named submodules (in call order)."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise ValueError(
                f"layers: expected submodule names of {type(model).__name__} "
                f"(e.g. {list(modules)[1:6]}), got unknown {missing}"
            )
        self.outputs: dict[str, list[Tensor]] = {n: [] for n in names}
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name: str):
        def hook(module, inputs, output):
            self.outputs[name].append(output[0] if isinstance(output, tuple) else output)

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@dataclass
class Forward:
    """Outputs of the batch and of each set of copies, and captured features (``name -> [batch, copies...]``)."""

    fx: Tensor
    fgx: list[Tensor]
    features: dict[str, list[Tensor]] = field(default_factory=dict)


def _rows(part: AnyData, node_level: bool) -> int:
    if not is_graph(part):
        return part.shape[0]
    return part.num_nodes if node_level else num_graphs(part)


def _split(tensor: Tensor, parts: Sequence[AnyData]) -> list[Tensor]:
    """Cut a stacked output or feature into its parts; node- or sample-level from its row count."""
    total_nodes = sum(p.num_nodes for p in parts) if is_graph(parts[0]) else -1
    node_level = tensor.shape[0] == total_nodes
    return list(tensor.split([_rows(p, node_level) for p in parts], dim=0))


def _per_copy(copies: Copies, data: AnyData) -> list[AnyData]:
    """The copies of ``data`` one at a time (copy ``c`` is samples ``c * B' .. (c + 1) * B' - 1`` of ``moved``)."""
    if copies.copies == 1:
        return [copies.moved]
    one = data if copies.graphs is None or not is_graph(data) else gather_graphs(data, copies.graphs)[0]
    return [copies.part(c, 1, one) for c in range(copies.copies)]


def forward_copies(
    model: nn.Module,
    data: AnyData,
    copies: Sequence[Copies],
    spec: Spec,
    stack: bool | None = None,
    layers: Sequence[str] = (),
    hook_model: nn.Module | None = None,
) -> Forward:
    """Run ``model`` on ``data`` and on every set of ``copies``.

    ``stack=True``: one forward over the batch and all copies stacked (cheapest where a forward's cost is
    mostly per call); ``False``: one forward per copy, each the size of the batch (cheapest where big batches
    are memory-bound); ``None`` lets the model decide (:func:`should_stack`). ``layers`` names submodules of
    ``hook_model`` (default ``model``) whose outputs are captured as features.
    """
    stack = should_stack(model) if stack is None else stack
    capture = _Capture(hook_model or model, layers) if layers else None
    try:
        if stack and copies:
            parts = [data] + [c.moved for c in copies]
            outs = _split(output_rows(model(concat(parts)), spec), parts)
            feats = {n: _split(capture.outputs[n][0], parts) for n in layers} if capture else {}
        else:
            chunks = [[data]] + [_per_copy(c, data) for c in copies]
            outs = [torch.cat([output_rows(model(p), spec) for p in part]) for part in chunks]
            feats = {}
            if capture:
                for n in layers:
                    found = iter(capture.outputs[n])
                    feats[n] = [torch.cat([next(found) for _ in part]) for part in chunks]
    finally:
        if capture:
            capture.close()
    return Forward(outs[0], outs[1:], feats)


# --- the comparison -------------------------------------------------------------------------------
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


def _log_probs(logits: Tensor) -> Tensor:
    """Log class probabilities of logits ``(rows, C)``: softmax, or a Bernoulli ``[1 - σ, σ]`` for one logit."""
    if logits.shape[-1] == 1:
        logits = torch.cat([torch.zeros_like(logits), logits], -1)
    return F.log_softmax(logits, -1)


def kl_logits(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """``KL(p || q)`` per row for logits ``(rows, C)``: categorical for ``C > 1``, Bernoulli for ``C == 1``."""
    log_p, log_q = _log_probs(p_logits), _log_probs(q_logits)
    return (log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0)  # >= 0; round-off gives -1e-9 for p == q


def js_logits(p_logits: Tensor, q_logits: Tensor) -> Tensor:
    """Jensen-Shannon divergence per row, ``(rows,)``: symmetric, bounded by ``ln 2``, zero iff ``p == q``."""
    log_p, log_q = _log_probs(p_logits), _log_probs(q_logits)
    log_m = torch.logsumexp(torch.stack([log_p, log_q]), 0) - torch.log(torch.tensor(2.0, dtype=log_p.dtype))
    js = 0.5 * ((log_p.exp() * (log_p - log_m)).sum(-1) + (log_q.exp() * (log_q - log_m)).sum(-1))
    return js.clamp_min(0)  # >= 0; round-off gives -1e-9 for p == q


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


def transformed_outputs(
    model: nn.Module,
    data: AnyData,
    group: Group,
    spec: Spec,
    n_samples: int | None = 8,
    generator: torch.Generator | None = None,
    elements: Element | None = None,
    stack: bool | None = None,
) -> Comparison:
    """Run ``model`` on ``data`` and its transformed copies and compare (the path every metric takes).

    ``n_samples`` random copies (rounded up so that every coset of the group is measured), every element of
    a finite group (``None``), or the given ``elements`` (one per sample, copy-major; ``n_samples`` copies).
    ``stack``: how the forwards are planned (:func:`forward_plan`; ``None``: under the model's node budget).
    """
    if elements is None and n_samples is not None:
        n_samples = copies_needed(group, n_samples)
    copies = make_copies(data, group, spec, n_samples, generator, elements=elements)
    # All copies are made (sampled, tiled, moved) at once; each forward takes a contiguous range of them.
    fx, fgx, first, templates = None, [], 0, {1: data}
    for count in forward_plan(model, data, copies.copies, stack):
        if count == 0:
            fx = measured_rows(model, data, spec)
            continue
        if count == copies.copies:
            part = copies.moved  # all of them in one forward: nothing to cut
        else:
            if count not in templates:
                templates[count] = repeat(data, count, spec)
            part = copies.part(first, count, templates[count])
        if fx is None:
            fx, moved = _split(measured_rows(model, concat([data, part], spec), spec), [data, part])
        else:
            moved = measured_rows(model, part, spec)
        fgx.append(moved)
        first += count
    return compare(fx, torch.cat(fgx), copies, data, group, spec)


# --- the scale ------------------------------------------------------------------------------------
class OutputScale:
    """Running statistics of ``f(x)`` for the block scales ``s_j`` (float64 sums, pooled over batches)."""

    def __init__(self, irreps: o3.Irreps) -> None:
        self.irreps = irreps
        self.rows = 0
        self.total: Tensor | None = None
        self.total_sq: Tensor | None = None
        self.dtype = torch.float32

    def add(self, fx: Tensor) -> OutputScale:
        """Add the rows of ``f(x)`` ``(rows, dim)``; returns ``self``."""
        rows = fx.detach().reshape(-1, self.irreps.dim).to(torch.float64)
        total, total_sq = rows.sum(0), rows.pow(2).sum(0)
        self.total = total if self.total is None else self.total + total
        self.total_sq = total_sq if self.total_sq is None else self.total_sq + total_sq
        self.rows += rows.shape[0]
        self.dtype = fx.dtype
        return self

    def value(self) -> Tensor:
        """``s_j`` per block, ``(n_blocks,)`` float64 (see the module docstring)."""
        if self.total is None or self.rows == 0:
            raise ValueError("output scale: expected at least one output row, got none")
        mean, mean_sq = self.total / self.rows, self.total_sq / self.rows
        scales = []
        for (_mul, ir), sl in zip(self.irreps, self.irreps.slices()):
            if ir.l == 0 and ir.p == 1 and self.rows > 1:
                var = (mean_sq[sl] - mean[sl].pow(2)).clamp_min(0).mean()
            else:
                var = mean_sq[sl].mean()
            scales.append(var.sqrt())
        floor = torch.finfo(self.dtype).eps ** 0.5 if self.dtype.is_floating_point else 0.0
        return torch.stack(scales).clamp_min(floor)


def block_scale(fx: Tensor, irreps: o3.Irreps) -> Tensor:
    """``s_j`` of one set of outputs ``(rows, dim)``: ``(n_blocks,)``."""
    return OutputScale(irreps).add(fx).value()


def as_scale(scale: Tensor | float | Sequence[float], irreps: o3.Irreps) -> Tensor:
    """A user scale (one number, or one per block) as ``(n_blocks,)`` float64."""
    value = torch.as_tensor(scale, dtype=torch.float64).reshape(-1)
    if value.numel() == 1:
        value = value.expand(len(irreps))
    if value.numel() != len(irreps) or bool((value <= 0).any()):
        raise ValueError(
            f"scale: expected one positive number or one per output block ({len(irreps)}: {irreps}), got {scale}"
        )
    return value


def distance(kind: str, comparison: Comparison, scale: Tensor | None = None) -> Tensor:
    """Per copy and sample distance ``d(f(g·x), ρ(g) f(x))``, ``(K, B)``, differentiable.

    ``mse``: mean squared difference over a sample's rows and components; ``relative``: ``r^2`` with the
    block scales of the compared outputs (held fixed: gradients never widen the scale); ``kl``:
    ``KL(p(x) || p(g·x))`` and ``js`` (Jensen-Shannon) between predictive distributions (classifier logits:
    softmax, or Bernoulli for one logit).
    """
    if kind == "kl":
        return comparison.kl_divergence()
    if kind == "js":
        return comparison.js_divergence()
    squared = comparison.squared_error()
    if kind == "mse":
        dims = torch.tensor(block_dims(comparison.irreps), dtype=squared.dtype, device=squared.device)
        return (squared * dims).sum(-1) / dims.sum()
    if kind == "relative":
        scale = block_scale(comparison.fx, comparison.irreps) if scale is None else scale
        return relative_from_squared(squared, scale, comparison.irreps).pow(2)
    raise ValueError(f"distance: expected one of {DISTANCES}, got {kind!r}")
