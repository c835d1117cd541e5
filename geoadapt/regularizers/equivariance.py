"""The equivariance regularizer ``R = E_x E_g d(f(g·x), ρ_out(g) f(x))``, at the output and at features.

Training runs ONE forward pass on the original batch stacked with every regularizer's transformed
copies (:func:`stacked_forward`); the task loss uses the original slice, so the only extra work is the
forward (and backward) of the copies. Copies, forward and comparison are those of
:mod:`geoadapt.metrics.compare`, the path the metrics take: a penalty and a measured error differ only in
that the penalty keeps its gradients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from e3nn import o3
from torch import Tensor, nn

from geoadapt.groups.base import Group
from geoadapt.metrics.compare import (
    DISTANCES,
    Copies,
    compare,
    distance,
    forward_copies,
    make_copies,
    output_rows,
)
from geoadapt.regularizers.schedules import Schedule
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, is_graph, num_graphs


class EquivarianceRegularizer(nn.Module):
    """Penalize ``d(f(g·x), ρ_out(g) f(x))`` for ``n_samples`` random ``g`` per sample.

    Args:
        group: the symmetry to keep; spec: how it acts on inputs and outputs.
        weight: multiplier of the penalty (times ``schedule(epoch)``).
        distance: ``"mse"`` (mean squared difference, in the units the model outputs: standardized targets
            in the Trainer), ``"relative"`` (the squared relative error of the metrics, with the batch's own
            output scale) or ``"kl"`` (KL between predictive distributions, for classifier logits).
        layers: feature-level terms: submodule name -> irreps of its output rows (a list of names takes
            the irreps from the submodule's ``irreps_out`` when it has one, else invariant scalars).
        output: include the output-level term (set ``False`` for features only).
        batch_fraction: share of each batch's graphs that get transformed copies (chosen at random each
            step). The penalty stays an unbiased estimate of ``E_x E_g d``; the extra compute shrinks with it.
        every: apply the penalty on every ``every``-th training step only, multiplied by ``every`` so its
            expected gradient is unchanged (lazy regularization, as for R1 in StyleGAN2).
    """

    def __init__(
        self,
        group: Group,
        spec: Spec,
        weight: float = 1.0,
        n_samples: int = 1,
        distance: str = "mse",
        layers: Mapping[str, str | o3.Irreps] | Sequence[str] | None = None,
        schedule: Schedule | None = None,
        output: bool = True,
        name: str | None = None,
        batch_fraction: float = 1.0,
        every: int = 1,
    ) -> None:
        super().__init__()
        if distance not in DISTANCES:
            raise ValueError(f"distance: expected one of {DISTANCES}, got {distance!r}")
        if n_samples < 1:
            raise ValueError(f"n_samples: expected >= 1, got {n_samples}")
        if not 0 < batch_fraction <= 1:
            raise ValueError(f"batch_fraction: expected a number in (0, 1], got {batch_fraction}")
        if every < 1:
            raise ValueError(f"every: expected a step interval >= 1, got {every}")
        self.group, self.spec, self.weight, self.n_samples = group, spec, float(weight), n_samples
        self.distance, self.schedule, self.output = distance, schedule or Schedule(), output
        self.layers = dict(layers) if isinstance(layers, Mapping) else {k: None for k in (layers or [])}
        self.name = name or repr(group)
        self.batch_fraction, self.every = float(batch_fraction), int(every)

    # --- the pieces stacked_forward uses -------------------------------------------------------
    def sample(self, batch: AnyData, generator: torch.Generator | None = None) -> Copies:
        """``n_samples`` transformed copies of ``batch`` (or of a random ``batch_fraction`` of its graphs)."""
        graphs = None
        if self.batch_fraction < 1:
            total = num_graphs(batch)
            keep = max(1, round(self.batch_fraction * total))
            graphs = torch.randperm(total, generator=generator)[:keep].sort().values
        return make_copies(batch, self.group, self.spec, self.n_samples, generator, graphs=graphs, cover_cosets=False)

    def penalty(
        self, batch: AnyData, fx: Tensor, fgx: Tensor, copies: Copies, features: Mapping[str, tuple[Tensor, Tensor]]
    ) -> Tensor:
        """Mean distance over the copied samples (output term plus feature terms), unweighted."""
        terms = []
        if self.output:
            terms.append(self._term(batch, fx, fgx, copies, self.spec))
        for name, (orig, moved) in features.items():
            terms.append(self._term(batch, orig, moved, copies, self.feature_spec(name, orig, batch)))
        return torch.stack(terms).sum()

    def feature_spec(self, name: str, features: Tensor, batch: AnyData) -> Spec:
        """Spec of a captured feature tensor: its irreps, and node or graph level from its row count."""
        irreps = self.layers.get(name) or f"{features.shape[-1]}x0e"
        node_level = is_graph(batch) and features.shape[0] == batch.num_nodes
        return Spec(output=irreps, output_level="node" if node_level else "graph")

    def _term(self, batch: AnyData, fx: Tensor, fgx: Tensor, copies: Copies, spec: Spec) -> Tensor:
        return distance(self.distance, compare(fx, fgx, copies, batch, self.group, spec)).mean()

    # --- the interface the Trainer uses ------------------------------------------------------
    def components(self) -> list[EquivarianceRegularizer]:
        """The base regularizers whose copies join the stacked forward."""
        return [self]

    def loss(self, penalties: list[Tensor], epoch: float) -> Tensor:
        """Contribution to the training loss."""
        return self.weight * self.schedule(epoch) * penalties[0]

    def end_epoch(self, measured: list[float]) -> None:
        """Hook after each epoch with the epoch-mean penalties (dual updates live here in subclasses)."""

    def log(self) -> dict[str, float]:
        """Numbers worth logging every epoch."""
        return {f"{self.name}/weight": self.weight}

    def extra_repr(self) -> str:
        return f"group={self.group!r}, weight={self.weight}, n_samples={self.n_samples}, distance={self.distance!r}"


def stacked_forward(
    model: nn.Module,
    batch: AnyData,
    regularizers: Sequence[EquivarianceRegularizer],
    generator: torch.Generator | None = None,
    stack: bool | None = None,
    hook_model: nn.Module | None = None,
    step: int | None = None,
    spec: Spec | None = None,
) -> tuple[Tensor, list[Tensor]]:
    """``f(x)`` and the unweighted penalty of each base regularizer, from one stacked forward pass.

    ``stack``: copies in the batch's forward (``True``), in their own (``False``), or as the model says
    (``None``: see :func:`geoadapt.metrics.compare.should_stack`). ``hook_model`` is the module whose submodule
    names the feature terms use (the inner model when ``model`` is a DDP wrapper). ``step`` (training) skips
    the regularizers whose ``every`` does not divide it: their penalty is 0 on this step, and active ones are
    scaled by ``every``. ``spec`` (default: the first regularizer's) shapes the model's outputs.
    """
    spec = spec or (regularizers[0].spec if regularizers else getattr(hook_model or model, "spec", None))
    active = [r for r in regularizers if step is None or step % r.every == 0]
    if not active:
        out = model(batch)
        return (out if spec is None else output_rows(out, spec)), [out.new_zeros(()) for _ in regularizers]
    copies = [reg.sample(batch, generator) for reg in active]
    names = sorted({name for reg in active for name in reg.layers})
    modules = dict((hook_model or model).named_modules()) if names else {}
    for reg in active:  # irreps of features not given by the user: from the module (e3nn's irreps_out)
        for name, irreps in reg.layers.items():
            if irreps is None and hasattr(modules.get(name), "irreps_out"):
                reg.layers[name] = str(modules[name].irreps_out)
    out = forward_copies(model, batch, copies, spec, stack, names, hook_model)
    found = {}
    for i, (reg, c) in enumerate(zip(active, copies), start=1):
        feats = {n: (out.features[n][0], out.features[n][i]) for n in reg.layers}
        scale = reg.every if step is not None else 1  # lazy regularization keeps the expected gradient
        found[id(reg)] = scale * reg.penalty(batch, out.fx, out.fgx[i - 1], c, feats)
    return out.fx, [found.get(id(reg), out.fx.new_zeros(())) for reg in regularizers]
