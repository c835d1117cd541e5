"""Outputs of a batch and of its transformed copies: the plan of :mod:`~geoadapt.equivariance.planner` run, and
each set of copies handed back ready to compare. Metrics and regularizers ask here, through :func:`run_copies`
(or :func:`transformed_outputs`, the measuring path), and nowhere else."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from geoadapt.equivariance.capture import Capture
from geoadapt.equivariance.comparison import Comparison, compare
from geoadapt.equivariance.copies import Copies, copies_needed, make_copies
from geoadapt.equivariance.modes import quiet, stochastic_layers
from geoadapt.equivariance.outputs import measured_rows, output_rows
from geoadapt.equivariance.planner import BATCH, Piece, Plan, plan_forwards
from geoadapt.groups.base import Element, Group
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, concat, is_graph, num_graphs


@dataclass
class CopyOutputs:
    """``f(x)`` and ``f(g·x)`` of one set of copies, and the captured features, ready to compare.

    Attributes:
        data: the samples ``copies`` is described against (the batch, or the copied samples alone after a
            quiet forward of their own).
        copies: the copies, described against ``data``.
        fx: ``f(data)``, ``(rows, dim)``.
        fgx: ``f(g·x)`` of every copy, copy-major, ``(copies * rows', dim)``.
        features: submodule name -> (its output on ``data``, its output on the copies).
    """

    data: AnyData
    copies: Copies
    fx: Tensor
    fgx: Tensor
    features: dict[str, tuple[Tensor, Tensor]] = field(default_factory=dict)

    def compare(self, group: Group, spec: Spec) -> Comparison:
        """The :class:`~geoadapt.equivariance.comparison.Comparison` of these outputs under ``group``."""
        return compare(self.fx, self.fgx, self.copies, self.data, group, spec)


@dataclass
class Outputs:
    """``fx``: the batch's outputs ``(rows, dim)`` (for the task; ``None`` when it did not run); ``sets``: one
    :class:`CopyOutputs` per set of copies."""

    fx: Tensor | None
    sets: list[CopyOutputs]


@dataclass
class _Ran:
    """One piece after its forward: its input, its output rows and its features."""

    data: AnyData
    rows: Tensor
    features: dict[str, Tensor]


def run_copies(
    model: nn.Module,
    data: AnyData,
    copies: Sequence[Copies],
    spec: Spec | None,
    stack: bool | None = None,
    layers: Sequence[str] = (),
    hook_model: nn.Module | None = None,
    measuring: bool = False,
    outputs: Tensor | None = None,
) -> Outputs:
    """Run ``model`` on ``data`` and on every set of ``copies`` as :func:`~geoadapt.equivariance.planner.plan_forwards`
    plans it (``measuring``: under the model's node budgets; else for training, dropout and batch norm quiet).

    ``layers`` names submodules of ``hook_model`` (default ``model``) whose outputs are captured as features.
    ``outputs``: the model's outputs on ``data`` already computed (the task's forward): the batch is not run
    again, unless features are captured (they need the batch's own forward). ``spec=None`` hands back the raw
    outputs of a forward without copies.
    """
    hooked = hook_model or model
    quiet_route = not measuring and bool(stochastic_layers(hooked))
    with_batch = outputs is None or (bool(layers) and not quiet_route)
    counts = [c.copies for c in copies]
    plan = plan_forwards(model, data, counts, stack, measuring, with_batch, hooked)
    ran = _execute(model, data, copies, spec, plan, Capture(hooked, layers) if layers else None)
    fx = ran[BATCH].rows if BATCH in ran else None if outputs is None else output_rows(outputs, spec)
    return Outputs(fx, [_assemble(s, c, data, ran, fx) for s, c in enumerate(copies)])


def _execute(
    model: nn.Module, data: AnyData, copies: Sequence[Copies], spec: Spec | None, plan: Plan, capture: Capture | None
) -> dict[Piece, _Ran]:
    """Every pass of ``plan``, its outputs (and features) cut back into its pieces."""
    ran: dict[Piece, _Ran] = {}
    templates: dict[tuple[int, int], AnyData] = {}
    quieted = False
    try:
        with ExitStack() as context:
            for step in plan.passes:
                if step.quiet and not quieted:  # one quiet block for all quiet passes (they come last)
                    context.enter_context(quiet(plan.noisy))
                    quieted = True
                parts = [_input(piece, data, copies, spec, templates) for piece in step.pieces]
                joined = parts[0] if len(parts) == 1 else concat(parts, spec)
                mark = capture.mark() if capture else None
                if plan.measuring and capture is None:  # features come from whole forwards: never cut into runs
                    rows = measured_rows(model, joined, spec)
                else:
                    out = model(joined)
                    rows = out if spec is None else output_rows(out, spec)
                features = {n: _split(f, parts) for n, f in capture.first_since(mark).items()} if capture else {}
                for i, (piece, part, part_rows) in enumerate(zip(step.pieces, parts, _split(rows, parts))):
                    ran[piece] = _Ran(part, part_rows, {n: f[i] for n, f in features.items()})
    finally:
        if capture:
            capture.close()
    return ran


def _input(
    piece: Piece, data: AnyData, copies: Sequence[Copies], spec: Spec | None, templates: dict[tuple[int, int], AnyData]
) -> AnyData:
    """The data one piece stands for."""
    if piece.copies is None:
        return data
    c = copies[piece.copies]
    if piece.originals:
        return c.originals(data)
    if piece.first == 0 and piece.count == c.copies:
        return c.moved  # all of them: nothing to cut
    key = (piece.copies, piece.count)
    if key not in templates:
        templates[key] = c.template(data, piece.count, spec)
    return c.part(piece.first, piece.count, templates[key])


def _assemble(s: int, c: Copies, data: AnyData, ran: dict[Piece, _Ran], fx: Tensor | None) -> CopyOutputs:
    """The outputs of set ``s``: its copies' rows in order, against the batch or its own originals."""
    moved = sorted((p for p in ran if p.copies == s and not p.originals), key=lambda p: p.first)
    own = ran.get(Piece(s, originals=True))
    if own is not None:
        base, described, reference, features = own.data, c.alone(), own.rows, own.features
    else:
        base, described, reference = data, c, fx
        features = ran[BATCH].features if BATCH in ran else {}
    fgx = _cat([ran[p].rows for p in moved])
    pairs = {n: (f, _cat([ran[p].features[n] for p in moved])) for n, f in features.items()}
    return CopyOutputs(base, described, reference, fgx, pairs)


def _cat(tensors: list[Tensor]) -> Tensor:
    return tensors[0] if len(tensors) == 1 else torch.cat(tensors)


def _split(tensor: Tensor, parts: Sequence[AnyData]) -> list[Tensor]:
    """Cut a stacked output or feature into its parts; node- or sample-level from its row count."""
    if len(parts) == 1:
        return [tensor]
    total_nodes = sum(p.num_nodes for p in parts) if is_graph(parts[0]) else -1
    node_level = tensor.shape[0] == total_nodes
    return list(tensor.split([_rows(p, node_level) for p in parts], dim=0))


def _rows(part: AnyData, node_level: bool) -> int:
    if not is_graph(part):
        return part.shape[0]
    return part.num_nodes if node_level else num_graphs(part)


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
    ``stack``: how the forwards are planned (:func:`~geoadapt.equivariance.budget.forward_plan`; ``None``: under
    the model's node budget).
    """
    if elements is None and n_samples is not None:
        n_samples = copies_needed(group, n_samples)
    copies = make_copies(data, group, spec, n_samples, generator, elements=elements)
    return run_copies(model, data, [copies], spec, stack, measuring=True).sets[0].compare(group, spec)
