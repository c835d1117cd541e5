"""How many forwards the batch and its copies take: the model's stacking choice and node budgets.

A model (or a wrapper around it, through ``.model``) may declare ``stack_copies`` (copies share the batch's
forward, or each has its own), ``stack_nodes`` (most nodes one measuring forward holds) and ``split_nodes``
(most nodes one measuring forward holds on the CPU before a batch is cut into runs of consecutive graphs).
"""

from __future__ import annotations

from torch import nn

from geoadapt.structure import AnyData, is_graph

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


def forward_plan(model: object, data: AnyData, copies: int, stack: bool | None = None) -> list[int]:
    """How many copies each measuring forward runs; the batch itself rides in the first (a leading 0: alone).

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
