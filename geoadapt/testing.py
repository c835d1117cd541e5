"""pytest-ready equivariance assertions.

>>> assert_equivariant(model, batch, SO3(), model.spec)          # doctest: +SKIP
"""

from __future__ import annotations

import copy

import torch

from geoadapt.equivariance import evaluating, transformed_outputs
from geoadapt.groups.base import Group
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, num_graphs, to_dtype

# Absolute / relative tolerances by dtype: float32 round-off compounds through deep models.
TOLERANCES = {torch.float64: (1e-9, 1e-7), torch.float32: (1e-4, 1e-4)}


def assert_equivariant(
    model: torch.nn.Module,
    data: AnyData,
    group: Group,
    spec: Spec,
    atol: float | None = None,
    rtol: float | None = None,
    n_samples: int | None = None,
    dtype: torch.dtype = torch.float64,
    generator: torch.Generator | None = None,
) -> None:
    """Assert ``f(g·x) ≈ ρ_out(g) f(x)`` elementwise: ``|diff| <= atol + rtol * |ρ_out(g) f(x)|``.

    Runs on a copy of ``model`` and ``data`` cast to ``dtype`` (float64 by default). Finite groups are
    checked on every element when ``n_samples`` is None (an exact certificate); continuous groups on
    ``n_samples`` (default 4, at least ``group.num_cosets``) random elements from a fixed seed, one
    copy per coset in turn, so O(3) and E(3) are always checked on rotations and on reflections.
    On failure the message names each output irreps block that broke, the worst group element and
    graph, and the size of the error.

    e3nn models keep the precision of the default dtype they were built under: build them inside
    ``with geoadapt.dtypes.default_dtype(torch.float64):`` for float64 tolerances.
    """
    __tracebackhide__ = True
    default_atol, default_rtol = TOLERANCES.get(dtype, (1e-4, 1e-4))
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    if n_samples is None and not group.is_finite:
        n_samples = 4
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    if isinstance(model, torch.nn.Module):
        model = copy.deepcopy(model).to(dtype)
    data = to_dtype(data, dtype)
    with evaluating(model):
        t = transformed_outputs(model, data, group, spec, n_samples, generator)
    diff = (t.fgx - t.expected).abs().reshape(t.fgx.shape[0], -1)
    bound = atol + rtol * t.expected.abs().reshape(diff.shape)
    if bool((diff <= bound).all()):
        return
    graphs = num_graphs(data)
    lines = [f"{model.__class__.__name__} is not equivariant under {group!r} (atol={atol:g}, rtol={rtol:g}, {dtype}):"]
    for (mul, ir), sl in zip(spec.output, spec.output.slices()):
        excess = (diff[:, sl] - bound[:, sl]).amax(-1)
        if bool((excess <= 0).all()):
            continue
        worst_row = int(excess.argmax())
        stacked_graph = int(t.row_graph[worst_row])
        copy_id, graph_id = divmod(stacked_graph, graphs)
        lines.append(
            f"  output {mul}x{ir} (columns {sl.start}:{sl.stop}): max |f(g·x) - ρ(g)f(x)| = "
            f"{float(diff[:, sl].max()):.3e}, in graph {graph_id} under copy {copy_id}: "
            f"{group.describe(t.elements, stacked_graph)}"
        )
    raise AssertionError("\n".join(lines))
