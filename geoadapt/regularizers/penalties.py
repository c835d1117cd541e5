"""The penalties of several base terms from one planned forward of a batch and their copies, and ``E[R]`` on
held-out data. Copies, forwards and comparisons are the engine's (:mod:`geoadapt.equivariance`): a penalty and a
measured error differ only in that the penalty keeps its gradients."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from geoadapt.equivariance import evaluating, layer_irreps, run_copies
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, num_graphs

if TYPE_CHECKING:
    from geoadapt.regularizers.equivariance import EquivarianceRegularizer


def stacked_forward(
    model: nn.Module,
    batch: AnyData,
    regularizers: Sequence[EquivarianceRegularizer],
    generator: torch.Generator | None = None,
    stack: bool | None = None,
    hook_model: nn.Module | None = None,
    step: int | None = None,
    spec: Spec | None = None,
    whole: Sequence[EquivarianceRegularizer] = (),
    outputs: Tensor | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """``f(x)`` ``(rows, dim)`` and the unweighted penalty of each base regularizer, from one planned forward.

    ``stack``: copies in the batch's forward (``True``), in their own (``False``), or as the model says (``None``:
    :func:`geoadapt.equivariance.should_stack`); with dropout or batch norm in training mode the engine runs each
    penalty's copies in a quiet forward of their own (:mod:`geoadapt.equivariance.planner`). ``hook_model`` is the
    module whose submodule names the feature terms use (the inner model when ``model`` is a DDP wrapper). ``step``
    (training) skips the regularizers whose ``every`` does not divide it: their penalty is 0 on this step, and
    active ones are scaled by ``every``. ``spec`` (default: the first regularizer's) shapes the model's outputs. The
    regularizers in ``whole`` copy every graph this step, whatever their ``batch_fraction``. ``outputs``: the
    model's outputs on ``batch`` when already computed (see :func:`geoadapt.equivariance.run_copies`).
    """
    hooked = hook_model or model
    spec = spec or (regularizers[0].spec if regularizers else getattr(hooked, "spec", None))
    active = [r for r in regularizers if step is None or step % r.every == 0]
    copies = [r.sample(batch, generator, whole=any(r is w for w in whole)) for r in active]
    names = sorted({name for r in active for name in r.layers})
    out = run_copies(model, batch, copies, spec, stack, names, hook_model, outputs=outputs)
    found = {}
    for r, outs in zip(active, out.sets):
        scale = r.every if step is not None else 1  # lazy regularization keeps the expected gradient
        found[id(r)] = scale * r.penalty(outs, layer_irreps(hooked, r.layers))
    return out.fx, [found.get(id(r), out.fx.new_zeros(())) for r in regularizers]


@torch.no_grad()
def mean_penalty(
    model: nn.Module,
    batches: Iterable[AnyData],
    regularizer: EquivarianceRegularizer,
    spec: Spec | None = None,
    generator: torch.Generator | None = None,
    n_samples: int = 4,
) -> float:
    """``E[R]`` on held-out data: the regularizer's unweighted penalty in eval mode, averaged over ``batches``.

    Every graph is copied ``n_samples`` times (whatever the regularizer's ``batch_fraction`` and
    ``n_samples`` in training), so the estimate is not as noisy as one training step's.
    """
    spec = spec or regularizer.spec
    copies_each = max(n_samples, regularizer.n_samples)
    total, count = 0.0, 0
    with evaluating(model):
        for batch in batches:
            copies = regularizer.sample(batch, generator, whole=True, n_samples=copies_each)
            out = run_copies(model, batch, [copies], spec, layers=sorted(regularizer.layers))
            penalty = regularizer.penalty(out.sets[0], layer_irreps(model, regularizer.layers))
            total, count = total + float(penalty) * num_graphs(batch), count + num_graphs(batch)
    return total / max(count, 1)
