"""The one forward planner: which forwards run the batch and its transformed copies, and in what company.

A plan is a list of :class:`Pass` es, each one forward over :class:`Piece` s stacked in order. Two kinds of plan:

- **measuring** (eval mode, no gradients; one set of copies): the batch and its copies are spread over as few
  forwards as keep each under the model's node budget (:func:`~geoadapt.equivariance.budget.forward_plan`).
- **training** (gradients kept; one set of copies per penalty): every set stacked with the batch in one forward
  (``stack``), or the batch alone and each copy in a forward of its own. Where dropout or batch norm train
  (:func:`~geoadapt.equivariance.modes.stochastic_layers`) the batch runs alone for the task, and each set runs
  with the samples it copies in a quiet forward of its own (dropout off, one set of batch statistics for both):
  ``f(g·x)`` and ``f(x)`` would otherwise differ by chance and by their company even for an exactly
  equivariant model, and a penalty would mostly teach the model to saturate against that noise. Batch norm stays
  in training mode there: in eval mode its running statistics are constants the penalty could meet by shifting
  the activations that the training forward normalizes away anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import nn

from geoadapt.equivariance.budget import forward_plan, should_stack
from geoadapt.equivariance.modes import stochastic_layers
from geoadapt.structure import AnyData


@dataclass(frozen=True)
class Piece:
    """One part of a forward's input: the batch itself (``copies is None``), the samples that set ``copies``
    copied, on their own (``originals``), or copies ``first .. first + count - 1`` of set ``copies``."""

    copies: int | None = None
    first: int = 0
    count: int = 0
    originals: bool = False


BATCH = Piece()


@dataclass(frozen=True)
class Pass:
    """One forward over ``pieces`` stacked in order; ``quiet``: under :func:`~geoadapt.equivariance.modes.quiet`."""

    pieces: tuple[Piece, ...]
    quiet: bool = False


@dataclass
class Plan:
    """The forwards of one comparison, the stochastic layers quiet passes silence, and whether it measures."""

    passes: list[Pass]
    noisy: list[nn.Module] = field(default_factory=list)
    measuring: bool = False


def plan_forwards(
    model: nn.Module,
    data: AnyData,
    counts: Sequence[int],
    stack: bool | None = None,
    measuring: bool = False,
    with_batch: bool = True,
    hook_model: nn.Module | None = None,
) -> Plan:
    """The forwards that run ``data`` (unless ``with_batch`` is off) and sets of ``counts[s]`` copies each.

    ``stack``: copies in the batch's forward (``True``), one copy per forward (``False``), or as the model says
    (``None``: :func:`~geoadapt.equivariance.budget.should_stack`; measuring also under its node budget).
    ``hook_model``: the module whose dropout and batch norm count (the inner model of a wrapper).
    """
    if measuring:
        return Plan(_measuring(model, data, counts, stack, with_batch), measuring=True)
    head = (BATCH,) if with_batch else ()
    noisy = stochastic_layers(hook_model or model)
    if noisy:
        quiet = [Pass((Piece(s, originals=True), Piece(s, 0, k)), quiet=True) for s, k in enumerate(counts)]
        return Plan(([Pass(head)] if head else []) + quiet, noisy)
    stack = should_stack(model) if stack is None else stack
    if stack and counts:
        return Plan([Pass(head + tuple(Piece(s, 0, k) for s, k in enumerate(counts)))])
    alone = [Pass((Piece(s, c, 1),)) for s, k in enumerate(counts) for c in range(k)]
    return Plan(([Pass(head)] if head else []) + alone)


def _measuring(model: nn.Module, data: AnyData, counts: Sequence[int], stack: bool | None, with_batch: bool) -> list:
    """Measuring passes: the copies of one set spread under the node budget, the batch in the first forward."""
    if len(counts) != 1:
        raise ValueError(f"copies: expected one set of copies to measure, got {len(counts)}")
    passes, first = [], 0
    for i, count in enumerate(forward_plan(model, data, counts[0], stack)):
        pieces = (BATCH,) if i == 0 and with_batch else ()
        if count:
            pieces += (Piece(0, first, count),)
            first += count
        if pieces:
            passes.append(Pass(pieces))
    return passes
