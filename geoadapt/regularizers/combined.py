"""Several symmetries at once with self-tuned weights, and the constrained (dual ascent) forms."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from geoadapt.regularizers.base import RegularizerModule
from geoadapt.regularizers.dual import LogMultiplier
from geoadapt.regularizers.equivariance import EquivarianceRegularizer
from geoadapt.regularizers.forecast import BoundForecast, Outlook


def _every_step_unless_asked(term: EquivarianceRegularizer) -> EquivarianceRegularizer:
    """A term left at ``every="auto"`` applies its penalty on every step (the lazy default is for the plain,
    self-weighted regularizer; a multiplier that moves per step wants a penalty on every step)."""
    if term.every_option == "auto":
        term.every = 1
    return term


class MixedEquivarianceRegularizer(RegularizerModule):
    """Several symmetries (e.g. SO3, Permutation, SignFlip), each with a weight tuned during training.

    In the spirit of Kim et al. (2023), "Regularizing towards soft equivariance under mixed symmetries",
    with uncertainty-style weights: each term enters as ``w_k R_k`` with ``w_k = exp(-s_k)``, where
    ``s_k`` minimizes ``exp(-s_k) R̄_k + s_k``, i.e. ``w_k ∝ 1 / R̄_k`` for the epoch-mean penalty ``R̄_k``.
    It is set in closed form after every epoch (smoothed by ``momentum``), then the weights are rescaled
    to keep their sum (one per term), so the total regularization strength stays that of the base
    weights and only the split between symmetries is learned (unnormalized ``1/R̄`` weights would all
    run away together). A symmetry the data holds can be met, so ``R̄_k`` falls and its share rises;
    one the data breaks keeps ``R̄_k`` up and its share down. :meth:`weights` reports the split.
    """

    def __init__(
        self,
        regularizers: Sequence[EquivarianceRegularizer],
        learn_weights: bool = True,
        momentum: float = 0.5,
        weight_range: tuple[float, float] = (1e-3, 1e3),
        name: str = "mixed",
    ) -> None:
        super().__init__()
        if not regularizers:
            raise ValueError("regularizers: expected at least one EquivarianceRegularizer, got none")
        for term in regularizers:
            _every_step_unless_asked(term)
        self.terms = nn.ModuleList(regularizers)
        self.learn_weights, self.momentum, self.weight_range = learn_weights, momentum, weight_range
        self.register_buffer("log_scale", torch.zeros(len(regularizers)))
        self.name = name

    def components(self) -> list[EquivarianceRegularizer]:
        """The terms, one per symmetry."""
        return list(self.terms)

    def weights(self) -> dict[str, float]:
        """Current effective weight of each symmetry: ``base weight * exp(-s_k)``."""
        scale = torch.exp(-self.log_scale)
        return {t.name: t.weight * float(w) for t, w in zip(self.terms, scale)}

    def factors(self, epoch: float) -> list[Tensor]:
        """``base weight x schedule(epoch) x exp(-s_k)`` of each term."""
        return [t.weight * t.schedule(epoch) * torch.exp(-self.log_scale[k]) for k, t in enumerate(self.terms)]

    def epoch_update(self, measured: list[float]) -> None:
        """Move each ``s_k`` towards ``log R̄_k`` (the minimizer of ``exp(-s) R̄ + s``)."""
        if not self.learn_weights:
            return
        low, high = self.weight_range
        target = torch.tensor([math.log(max(m, 1e-12)) for m in measured])
        target = target + torch.logsumexp(-target, 0) - math.log(len(measured))  # weights sum to the term count
        target = target.clamp(-math.log(high), -math.log(low))
        self.log_scale.mul_(self.momentum).add_((1 - self.momentum) * target)

    def log(self) -> dict[str, float]:
        """The effective weight of each symmetry."""
        return {f"{self.name}/{k}/weight": v for k, v in self.weights().items()}


MULTIPLIER_RANGE = (1e-4, 1e6)


class ConstrainedEquivarianceRegularizer(RegularizerModule):
    """``min task loss  s.t.  E[R] <= epsilon``, solved by dual ascent on a Lagrange multiplier.

    In the spirit of Manolache et al., "Learning (approximately) equivariant networks via constrained
    optimization": the loss gains ``λ (R - ε)``. The multiplier ascends in log space on the *relative*
    violation ``e = clip((R - m ε - u) / ε, -1, 1)``, after every step that computed the penalty
    (``dual_update="step"``, the default) or once per epoch on the epoch mean (``"epoch"``), under cooper-optim's
    nuPI controller (:mod:`geoadapt.regularizers.dual`): ``log λ += dual_lr (e + dual_kp Δξ)``, ``ξ`` the error
    smoothed with ``dual_ema``. The proportional term (``dual_kp``, default 0: plain dual ascent) lowers λ as soon
    as the violation starts to fall, before the integral overshoots. The error is clipped below at ``-dual_floor``
    (default 0.2): λ falls at most a fifth as fast as it rises, since a multiplier that sinks while the bound holds
    lets the model drift out of it again, late in training, where the ascent cannot catch up. A step
    in log space adapts to the size λ needs, whatever it is: a multiplier that must reach 100 gets there in
    tens of steps, not thousands, and falls as fast once the constraint holds (an additive step of fixed size
    either crawls or overshoots). Dividing by ε makes ``dual_lr`` mean the same for every tolerance. The ascent
    aims at ``m ε`` on the training batches (``margin``, default 0.8), so that ``E[R] <= ε`` holds on data the
    model was not trained on, where the penalty is a little higher. λ stays in ``[1e-4, 1e6]``. ``R`` is in the
    units of the penalty (for ``distance="mse"`` in the Trainer: the mean squared difference of standardized
    outputs, so ``ε = 1e-3`` asks for an RMS change of about 3% of the targets' spread).
    ``homotopy=(ε_start, epochs)`` tightens ε geometrically from ``ε_start`` to ``epsilon`` over ``epochs``.

    ``resilient=True`` (for data that is only partly symmetric) adds a slack ``u >= 0`` with cost
    ``slack_cost / 2 * u^2``: the constraint becomes ``R <= ε + u`` and ``u = λ ε / slack_cost`` minimizes
    the Lagrangian, so the data decides how far from exact equivariance the model settles (:attr:`slack`).

    The Trainer measures ``E[R]`` on the validation data after every epoch (:meth:`record`) and reports at
    the end of ``fit`` whether ``E[R] <= ε + u`` holds and by how much it misses (:meth:`report`). Before the
    end, :meth:`verdict` says in one line whether the bound is on track, from the trend of the recorded
    measurements and of the multiplier (:class:`~geoadapt.regularizers.forecast.BoundForecast`).
    """

    def __init__(
        self,
        regularizer: EquivarianceRegularizer,
        epsilon: float = 1e-3,
        dual_lr: float = 0.1,
        initial_multiplier: float = 1.0,
        homotopy: tuple[float, int] | None = None,
        resilient: bool = False,
        slack_cost: float = 10.0,
        dual_update: str = "step",
        margin: float = 0.8,
        name: str | None = None,
        dual_kp: float = 0.0,
        dual_ema: float = 0.0,
        dual_floor: float = 0.2,
    ) -> None:
        super().__init__()
        if not epsilon > 0:
            raise ValueError(f"epsilon: expected > 0, got {epsilon}")
        if dual_update not in ("step", "epoch"):
            raise ValueError(f"dual_update: expected 'step' or 'epoch', got {dual_update!r}")
        if not dual_lr > 0:
            raise ValueError(f"dual_lr: expected > 0, got {dual_lr}")
        if not initial_multiplier > 0:
            raise ValueError(f"initial_multiplier: expected > 0 (the ascent is in log space), got {initial_multiplier}")
        if not 0 < margin <= 1:
            raise ValueError(f"margin: expected a number in (0, 1], got {margin}")
        if not 0 < dual_floor <= 1:
            raise ValueError(f"dual_floor: expected a number in (0, 1], got {dual_floor}")
        self.dual_floor = float(dual_floor)
        if homotopy is not None:
            start, epochs = homotopy
            if not (isinstance(start, (int, float)) and start > 0 and isinstance(epochs, int) and epochs >= 1):
                raise ValueError(f"homotopy: expected (epsilon_start > 0, epochs >= 1), got {tuple(homotopy)!r}")
        self.margin = float(margin)
        self.term = _every_step_unless_asked(regularizer)
        self.epsilon_final, self.dual_lr, self.homotopy = float(epsilon), float(dual_lr), homotopy
        self.resilient, self.slack_cost, self.dual_update = resilient, float(slack_cost), dual_update
        self.register_buffer("multiplier", torch.tensor(float(initial_multiplier)))
        self.dual = LogMultiplier(float(initial_multiplier), self.dual_lr, dual_kp, dual_ema, MULTIPLIER_RANGE)
        self.forecast = BoundForecast()
        self.register_buffer("slack_value", torch.tensor(0.0))
        self.register_buffer("violation", torch.tensor(0.0))
        self.register_buffer("measured", torch.tensor(math.nan))
        self.name = name or f"constrained[{regularizer.name}]"

    @property
    def epsilon(self) -> float:
        """The tolerance in force this epoch (homotopy: geometric from the start value to the final one)."""
        if self.homotopy is None:
            return self.epsilon_final
        start, epochs = self.homotopy
        progress = min(int(self.epoch) / max(epochs, 1), 1.0)
        return float(start * (self.epsilon_final / start) ** progress)

    @property
    def slack(self) -> float:
        """How far above ε the constraint was allowed to settle (resilient form; 0 otherwise)."""
        return float(self.slack_value)

    def components(self) -> list[EquivarianceRegularizer]:
        """The constrained term."""
        return [self.term]

    def factors(self, epoch: float) -> list[Tensor]:
        """The multiplier ``λ``."""
        return [self.multiplier]

    def bounds(self) -> list[Tensor]:
        """``ε + u``: the loss is ``λ (R - ε - u)``."""
        return [self.epsilon + self.slack_value]

    def get_extra_state(self) -> dict[str, list[list[float]]]:
        """The held-out measurements the forecast reads (plain data: a resumed run forecasts from all of them)."""
        return {"forecast": [list(point) for point in self.forecast.points]}

    def set_extra_state(self, state: dict[str, list[list[float]]]) -> None:
        """Restore the measurements of :meth:`get_extra_state`."""
        self.forecast.points = [(int(e), float(v), float(m)) for e, v, m in state.get("forecast", [])]

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        state_dict.setdefault(prefix + "_extra_state", {"forecast": []})  # saved before the forecast was kept
        # States saved before the controller existed keep only the multiplier: its log starts the controller.
        if prefix + "dual.log_value" not in state_dict and prefix + "multiplier" in state_dict:
            value = float(state_dict[prefix + "multiplier"])
            state_dict[prefix + "dual.log_value"] = torch.tensor(math.log(value), dtype=torch.float64)
            state_dict[prefix + "dual.smoothed_error"] = torch.tensor(0.0, dtype=torch.float64)
            state_dict[prefix + "dual.steps"] = torch.tensor(0)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _ascend(self, value: float) -> None:
        # The training batches are pushed below margin * ε so that the bound also holds on held-out data.
        relative = max((value - self.margin * self.epsilon - self.slack) / self.epsilon, -self.dual_floor)
        self.violation.fill_(value - self.epsilon - self.slack)
        if not math.isclose(self.dual.value, float(self.multiplier), rel_tol=1e-6):
            self.dual.set(float(self.multiplier))  # set from outside (a test, a warm start): the controller follows
        updated = self.dual.step(relative)
        self.multiplier.fill_(updated)
        if self.resilient:
            self.slack_value.fill_(updated * self.epsilon / self.slack_cost)

    def step_update(self, penalties: list[float]) -> None:
        """Dual ascent after one training step, on that step's penalty (``dual_update="step"``)."""
        if self.dual_update == "step" and math.isfinite(penalties[0]):
            self._ascend(float(penalties[0]))

    def end_step(self, penalties: Sequence[float], step: int) -> None:
        """Dual ascent on the penalty of training step ``step`` (as computed: scaled by a lazy term's ``every``),
        unless the term skipped that step (then the penalty is not a measurement)."""
        if step % self.term.every == 0:
            self.step_update([float(penalties[0]) / self.term.every])

    def epoch_update(self, measured: list[float]) -> None:
        """After each epoch: the dual step on the epoch mean (``dual_update="epoch"``); the homotopy's epoch then
        moves on (:meth:`end_epoch`)."""
        if self.dual_update == "epoch":
            self._ascend(float(measured[0]))
        else:
            self.violation.fill_(float(measured[0]) - self.epsilon - self.slack)

    def record(self, value: float) -> None:
        """``E[R]`` measured on held-out data (the Trainer calls it after each epoch)."""
        self.measured.fill_(value)
        self.forecast.add(int(self.epoch), value, float(self.multiplier))

    def outlook(self, epochs_left: int) -> Outlook:
        """The forecast behind :meth:`verdict`: ``state`` (``"met"``, ``"on track"``, ``"will miss"``,
        ``"unknown"``), the expected ``E[R]`` at the end of training and the expected ``miss``."""
        return self.forecast.outlook(self.epsilon_final + self.slack, epochs_left, MULTIPLIER_RANGE[1])

    def verdict(self, epochs_left: int) -> str:
        """One line, after any epoch: whether ``E[R] <= ε (+ slack)`` holds on the last held-out measurement and,
        if not, whether its trend and the multiplier's reach it in ``epochs_left`` more epochs; a bound that will
        not be met is said so with the expected miss (:meth:`~geoadapt.regularizers.forecast.BoundForecast.line`).
        """
        return self.forecast.line(self.name, self.epsilon_final + self.slack, epochs_left, MULTIPLIER_RANGE[1])

    def report(self) -> dict[str, float | bool | str]:
        """Whether the constraint holds on the last measurement, in the units of the penalty."""
        value = float(self.measured)
        bound = self.epsilon_final + self.slack
        return {
            "constraint": self.name,
            "epsilon": self.epsilon_final,
            "slack": self.slack,
            "measured": value,
            "met": bool(value <= bound),
            "miss": max(0.0, value - bound),
        }

    def log(self) -> dict[str, float]:
        """Multiplier, violation and tolerance in force; slack and the held-out measurement where there are."""
        out = {
            f"{self.name}/multiplier": float(self.multiplier),
            f"{self.name}/violation": float(self.violation),
            f"{self.name}/epsilon": self.epsilon,
        }
        if self.resilient:
            out[f"{self.name}/slack"] = self.slack
        if math.isfinite(float(self.measured)):
            out[f"{self.name}/val_penalty"] = float(self.measured)
            out[f"{self.name}/met"] = float(float(self.measured) <= self.epsilon + self.slack)
        return out


def constraint_verdict(report: dict[str, Any]) -> str:
    """One line from :meth:`ConstrainedEquivarianceRegularizer.report`: ``name E[R] <= ε met (measured m on the
    validation data)`` or ``name E[R] <= ε NOT met: measured m on the validation data, d above``."""
    head = f"{report['constraint']} E[R] <= {report['epsilon']:.3g}"
    if report.get("slack"):
        head += f" + slack {report['slack']:.3g}"
    if report["met"]:
        return f"{head} met (measured {report['measured']:.3g} on the validation data)"
    return f"{head} NOT met: measured {report['measured']:.3g} on the validation data, {report['miss']:.3g} above"
