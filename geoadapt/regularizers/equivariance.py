"""The equivariance regularizer ``R = E_x E_g d(f(g·x), ρ_out(g) f(x))``, at the output and at features.

Training runs ONE planned forward of the original batch with every regularizer's transformed copies
(:func:`~geoadapt.regularizers.penalties.stacked_forward`); the task loss uses the original's outputs, so the only
extra work is the forward (and backward) of the copies. Copies, forwards and comparison are the engine's
(:mod:`geoadapt.equivariance`), the path the metrics take.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from e3nn import o3
from torch import Tensor

from geoadapt.devices import full_precision, upcast
from geoadapt.equivariance import (
    DISTANCES,
    Copies,
    CopyOutputs,
    compare,
    distance,
    feature_spec,
    graph_run,
    make_copies,
)
from geoadapt.groups.base import Group
from geoadapt.regularizers.balance import ENOUGH, AutoWeight
from geoadapt.regularizers.base import RegularizerModule
from geoadapt.regularizers.logits import logit_spread, standardized_logit_distance
from geoadapt.regularizers.schedules import Schedule
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, num_graphs

# ``every="auto"``: the penalty on every other step (scaled by 2), which keeps the default's extra cost near 1.2x
# a plain epoch at the final error of copying every graph on every step (benchmarks/regularizer_overhead.py).
# Inside a constrained or mixed regularizer "auto" is every step: their multipliers move per step.
LAZY_EVERY = 2
# The distances a penalty takes: the engine's, and the classifier's standardized logits (regularizers/logits.py).
PENALTY_DISTANCES = (*DISTANCES, "logit")
# Keys of the balancing state saved before it moved into its own object (``balancer``).
_BALANCER_KEYS = ("weight_value", "balance_steps", "round_off_streak")


class EquivarianceRegularizer(RegularizerModule):
    """Penalize ``d(f(g·x), ρ_out(g) f(x))`` for ``n_samples`` random ``g`` per sample.

    Args:
        group: the symmetry to keep; spec: how it acts on inputs and outputs.
        weight: multiplier of the penalty (times ``schedule(epoch)``), or ``"auto"`` (the default and the
            recommended start): inside the Trainer the weight sets itself every ``balance_every`` steps so that
            the penalty's gradient is ``balance_ratio`` times the task loss's gradient (norms over the trainable
            parameters, smoothed in log space). ``balance_ratio="auto"`` (the default) is 0.5 for MSE-type
            distances (regression, potentials) and 0.2 for divergences between class probabilities
            (classifiers): see ``BALANCE_RATIOS``. A fixed weight has no scale that suits every target; this one
            follows the task: as the model becomes equivariant the penalty's gradient shrinks and the weight
            grows, so the error keeps falling instead of stalling where a fixed weight stops mattering.
            In a loop of your own the weight sets itself when the call gets the task loss
            (``reg(model, batch, task_loss=loss)``); without it, and inside a mixed or constrained regularizer,
            ``"auto"`` stays 1. The weight and its balancing state live in :attr:`balancer`
            (:class:`~geoadapt.regularizers.balance.AutoWeight`).
        distance: ``"mse"`` (mean squared difference, in the units the model outputs: standardized targets
            in the Trainer), ``"relative"`` (the squared relative error of the metrics, with the batch's own
            output scale), ``"kl"`` / ``"js"`` (KL / Jensen-Shannon between predictive distributions, for
            classifier logits), ``"logit"`` (the squared change of class-centred logits over their variance
            across the batch, :mod:`geoadapt.regularizers.logits`: neither saturating nor shrinking the logits
            lowers it), or ``"auto"`` (the default): the task's ``default_distance`` once the Trainer knows the task
            (``"logit"`` for classification, ``"mse"`` otherwise; ``"mse"`` in a loop of one's own). An MSE on raw
            logits, or a divergence of probabilities, can be lowered by moving predictions towards one class.
        layers: feature-level terms: submodule name -> irreps of its output rows (a list of names takes
            the irreps from the submodule's ``irreps_out`` when it has one, else invariant scalars).
        output: include the output-level term (set ``False`` for features only).
        batch_fraction: share of each batch's graphs that get transformed copies (a run of consecutive graphs
            from a random start each step, wrapping at the end: every graph is copied with probability
            ``batch_fraction``). The penalty stays an unbiased estimate of ``E_x E_g d``; the extra compute
            shrinks with it.
            On the steps where ``weight="auto"`` re-sets itself every graph is copied: the weight is calibrated
            on the penalty of the whole batch, whose gradient norm is not inflated by the noise of a small
            sample, so a fraction keeps the expected gradient of copying everything.
        every: apply the penalty on every ``every``-th training step only, multiplied by ``every`` so its
            expected gradient is unchanged (lazy regularization, as for R1 in StyleGAN2). ``"auto"`` (the
            default) is 2: with a quarter of each batch copied, the penalty costs ~1.2x a plain epoch and ends
            about as equivariant as copying every graph on every step (``benchmarks/regularizer_overhead.py``).
            Inside a :class:`ConstrainedEquivarianceRegularizer` or :class:`MixedEquivarianceRegularizer`
            ``"auto"`` is 1: their multipliers move on every step, and with Adam rarer, larger penalty gradients
            are partly normalized away, which a constraint then pays for in missed bounds.
        balance_every: with ``weight="auto"``, how many active steps between two weight updates (doubling, up
            to 16x, while the penalty's gradient is at round-off: an exactly equivariant model).
    """

    def __init__(
        self,
        group: Group,
        spec: Spec,
        weight: float | str = "auto",
        n_samples: int = 1,
        distance: str = "auto",
        layers: Mapping[str, str | o3.Irreps] | Sequence[str] | None = None,
        schedule: Schedule | None = None,
        output: bool = True,
        name: str | None = None,
        batch_fraction: float = 0.25,
        every: int | str = "auto",
        balance_every: int = 20,
        balance_ratio: float | str = "auto",
    ) -> None:
        super().__init__()
        if distance not in (*PENALTY_DISTANCES, "auto"):
            raise ValueError(f"distance: expected one of {(*PENALTY_DISTANCES, 'auto')}, got {distance!r}")
        self.balancer = AutoWeight(weight, balance_every, balance_ratio)
        if n_samples < 1:
            raise ValueError(f"n_samples: expected >= 1, got {n_samples}")
        if not 0 < batch_fraction <= 1:
            raise ValueError(f"batch_fraction: expected a number in (0, 1], got {batch_fraction}")
        if every != "auto" and (isinstance(every, str) or not every >= 1 or int(every) != every):
            raise ValueError(f"every: expected a whole step interval >= 1 or 'auto', got {every!r}")
        self.group, self.spec, self.n_samples = group, spec, n_samples
        self.distance, self.schedule, self.output = distance, schedule or Schedule(), output
        self.layers = dict(layers) if isinstance(layers, Mapping) else {k: None for k in (layers or [])}
        self.name = name or repr(group)
        self.batch_fraction, self.every_option = float(batch_fraction), every
        self.every = LAZY_EVERY if every == "auto" else int(every)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        # States saved before the balancing state had its own object keep it flat: moved under ``balancer.``. Runs
        # saved before the back-off existed have no streak: they resume without one.
        for key in _BALANCER_KEYS:
            if prefix + key in state_dict:
                state_dict.setdefault(f"{prefix}balancer.{key}", state_dict.pop(prefix + key))
        state_dict.setdefault(f"{prefix}balancer.round_off_streak", torch.tensor(0))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # --- the weight ------------------------------------------------------------------------------
    @property
    def auto_weight(self) -> bool:
        """Whether the weight sets itself (``weight="auto"``)."""
        return self.balancer.auto

    @property
    def weight(self) -> float:
        """The weight in force (for ``"auto"``: the latest balanced value)."""
        return self.balancer.value

    @weight.setter
    def weight(self, value: float) -> None:
        self.balancer.value = value

    @property
    def balance_every(self) -> int:
        """With ``weight="auto"``, active steps between two weight updates."""
        return self.balancer.interval

    @property
    def ratio_option(self) -> float | str:
        """``balance_ratio`` as given (a number or ``"auto"``)."""
        return self.balancer.ratio_option

    @property
    def balance_ratio(self) -> float:
        """The penalty-to-task gradient ratio the auto weight keeps (``"auto"``: by distance, ``BALANCE_RATIOS``)."""
        return self.balancer.ratio(self.distance)

    def balance(self, task_grad_norm: float, penalty_grad_norm: float, penalty: float | None = None) -> None:
        """Set the auto weight from the gradient norms of the task loss and of the (unweighted) penalty; ``penalty``
        (its value) stops the weight growing below the distance's ``ENOUGH`` level (standardized logits)."""
        self.balancer.update(task_grad_norm, penalty_grad_norm, self.balance_ratio, penalty, ENOUGH.get(self.distance))

    def balances_at(self, step: int) -> bool:
        """Whether the auto weight re-sets itself at training step ``step`` (every ``balance_every`` active steps)."""
        return self.balancer.due(step, self.every)

    # --- copies and penalty ----------------------------------------------------------------------
    def sample(
        self,
        batch: AnyData,
        generator: torch.Generator | None = None,
        whole: bool = False,
        n_samples: int | None = None,
    ) -> Copies:
        """``n_samples`` (default: the regularizer's) transformed copies of ``batch``, or of a run of
        ``batch_fraction`` of its graphs (:func:`~geoadapt.equivariance.graph_run`) unless ``whole``."""
        graphs = None if whole else graph_run(num_graphs(batch), self.batch_fraction, generator)
        n_samples = n_samples or self.n_samples
        return make_copies(batch, self.group, self.spec, n_samples, generator, graphs=graphs, cover_cosets=False)

    def penalty(self, outputs: CopyOutputs, irreps: Mapping[str, str | o3.Irreps | None] | None = None) -> Tensor:
        """Mean distance over the copied samples (output term plus feature terms), unweighted.

        ``irreps``: the irreps of each feature term (:func:`~geoadapt.equivariance.layer_irreps`; default: as given).
        """
        irreps = self.layers if irreps is None else irreps
        terms = []
        if self.output:
            terms.append(self._term(outputs.data, outputs.fx, outputs.fgx, outputs.copies, self.spec))
        for name in self.layers:
            orig, moved = outputs.features[name]
            spec = feature_spec(irreps.get(name), orig, outputs.data)
            terms.append(self._term(outputs.data, orig, moved, outputs.copies, spec))
        return torch.stack(terms).sum()

    def _term(self, batch: AnyData, fx: Tensor, fgx: Tensor, copies: Copies, spec: Spec) -> Tensor:
        kind = "mse" if self.distance == "auto" else self.distance
        # Under autocast the outputs may be bfloat16 and the rotations would be too: compare in float32 with
        # autocast off, since differences of 1e-3 vanish in bfloat16.
        with full_precision(fx.device):
            comparison = compare(upcast(fx), upcast(fgx), copies, batch, self.group, spec)
            if kind == "logit":  # the spread of every output row of the batch, not only the copied ones
                return standardized_logit_distance(comparison, logit_spread(upcast(fx))).mean()
            return distance(kind, comparison).mean()

    # --- the regularizer interface -------------------------------------------------------------
    def components(self) -> list[EquivarianceRegularizer]:
        """Itself: one term."""
        return [self]

    def balanced(self) -> list[EquivarianceRegularizer]:
        """Itself when its weight sets itself."""
        return [self] if self.auto_weight else []

    def factors(self, epoch: float) -> list[float]:
        """``weight x schedule(epoch)``."""
        return [self.weight * self.schedule(epoch)]

    def log(self) -> dict[str, float]:
        """Numbers worth logging every epoch."""
        return {f"{self.name}/weight": self.weight}

    def extra_repr(self) -> str:
        weight = "auto" if self.auto_weight else self.weight
        return f"group={self.group!r}, weight={weight}, n_samples={self.n_samples}, distance={self.distance!r}"
