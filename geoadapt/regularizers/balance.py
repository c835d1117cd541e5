"""The self-set weight of a penalty (``weight="auto"``) and the balancing step that sets it.

Contract: a regularizer's loss is linear in each of its penalties, ``loss = Σ_k factor_k · (penalty_k - bound_k)``
(:meth:`~geoadapt.regularizers.base.RegularizerModule.loss` is built that way from ``factors`` and ``bounds``), so
the gradient of a balanced term is ``factor_k`` times its penalty's gradient. :class:`BalancingStep` computes that
gradient once, sets the weight from its norm, and rebuilds the step's gradients from it
(:meth:`BalancingStep.backward`) instead of back-propagating the penalty a second time.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from geoadapt.regularizers.equivariance import EquivarianceRegularizer
    from geoadapt.regularizers.protocol import Regularizer

# The self-set weight's gradient ratio per distance (``balance_ratio="auto"``). Chosen once on the targets of
# benchmarks/molecular_adaptation.py (BBBP for classifiers), then fixed for every target: MSE penalties take a
# larger share than Jensen-Shannon ones, which a confident classifier can also lower by saturating its
# probabilities, pulling it towards one class when the share is large. The classifier default, standardized
# logits, keeps the share of the divergences it replaced (docs/promises.md).
BALANCE_RATIOS = {"mse": 0.5, "relative": 0.5, "js": 0.2, "kl": 0.2, "logit": 0.2}
# The penalty below which a self-set weight stops growing, per distance. Standardized logits have a meaning of their
# own: 1e-2 is a change under the group of 10% of the logits' spread across samples, which leaves the order of
# nearly every pair of predictions as it was; pushing further buys no invariance a prediction shows and costs fit
# (benchmarks/promise_classification.py: 129x cuts and a lower ROC-AUC without it, docs/promises.md).
ENOUGH = {"logit": 1e-2}
WEIGHT_RANGE = (1e-4, 1e6)
MAX_BACKOFF = 4  # an exact model's weight is re-checked at most 2**4 = 16x less often


class AutoWeight(nn.Module):
    """The weight of a penalty: a fixed number, or ``"auto"``: set every ``interval`` active steps so that the
    penalty's gradient is ``ratio`` times the task loss's (norms over the trainable parameters, smoothed in log
    space, kept in ``WEIGHT_RANGE``).

    State (buffers, saved with the regularizer): ``weight_value`` (the weight in force), ``balance_steps`` (how
    many balances set it) and ``round_off_streak`` (balances in a row that found the penalty's gradient at
    round-off, an exact model: each doubles the interval, up to ``2**MAX_BACKOFF`` times).

    Args:
        weight: a number ``>= 0`` (fixed), or ``"auto"`` (starts at 1).
        interval: active steps between two balances.
        ratio: the penalty-to-task gradient ratio, or ``"auto"``: by distance (``BALANCE_RATIOS``).
    """

    def __init__(self, weight: float | str = "auto", interval: int = 20, ratio: float | str = "auto") -> None:
        super().__init__()
        self.auto = isinstance(weight, str)
        if self.auto and weight != "auto":
            raise ValueError(f"weight: expected a number >= 0 or 'auto', got {weight!r}")
        if not self.auto and not float(weight) >= 0:
            raise ValueError(f"weight: expected a number >= 0 or 'auto', got {weight!r}")
        if ratio != "auto" and (isinstance(ratio, str) or not ratio > 0):
            raise ValueError(f"balance_ratio: expected a number > 0 or 'auto', got {ratio!r}")
        if interval < 1:
            raise ValueError(f"balance_every: expected an interval >= 1 (steps between weight updates), got {interval}")
        self.interval, self.ratio_option = int(interval), ratio
        self.register_buffer("weight_value", torch.tensor(1.0 if self.auto else float(weight)))
        self.register_buffer("balance_steps", torch.tensor(0))
        self.register_buffer("round_off_streak", torch.tensor(0))

    @property
    def value(self) -> float:
        """The weight in force."""
        return float(self.weight_value)

    @value.setter
    def value(self, value: float) -> None:
        self.weight_value.fill_(float(value))

    def ratio(self, distance: str) -> float:
        """The gradient ratio kept for a penalty of ``distance`` (an unresolved ``"auto"`` distance counts as MSE)."""
        if self.ratio_option != "auto":
            return float(self.ratio_option)
        return BALANCE_RATIOS.get(distance, BALANCE_RATIOS["mse"])

    def due(self, step: int, every: int = 1) -> bool:
        """Whether the weight re-sets itself at training step ``step`` of a penalty applied every ``every`` steps."""
        active = step // every
        if not self.auto or step % every or active % self.interval:
            return False
        # The back-off read last: a buffer read may wait for the device, on candidate steps only.
        return active % (self.interval * 2 ** int(self.round_off_streak)) == 0

    def update(
        self,
        task_grad_norm: float,
        penalty_grad_norm: float,
        ratio: float,
        penalty: float | None = None,
        enough: float | None = None,
    ) -> None:
        """Set the weight from the gradient norms of the task loss and of the unweighted, unscaled penalty; where the
        ``penalty`` itself is below ``enough``, the weight may fall but not grow."""
        if not (task_grad_norm > 0 and math.isfinite(task_grad_norm)):
            return
        if not penalty_grad_norm > 1e-6 * task_grad_norm:
            # An exact model keeps its weight: its penalty's gradient is round-off (1e-7 in float32), which a
            # weight set from it would amplify to the task's size. It is also balanced less and less often (2x,
            # 4x, ... up to 16x the interval): a balancing step costs about two plain steps, here for nothing.
            self.round_off_streak.fill_(min(int(self.round_off_streak) + 1, MAX_BACKOFF))
            return
        self.round_off_streak.zero_()
        target = math.log(ratio * task_grad_norm / penalty_grad_norm)
        if int(self.balance_steps) > 0:  # smoothed, so one noisy batch does not set the weight
            target = 0.7 * math.log(self.value) + 0.3 * target
            if enough is not None and penalty is not None and penalty < enough:
                target = min(target, math.log(self.value))
        self.value = math.exp(min(max(target, math.log(WEIGHT_RANGE[0])), math.log(WEIGHT_RANGE[1])))
        self.balance_steps += 1

    def extra_repr(self) -> str:
        return f"weight={'auto' if self.auto else self.value}, interval={self.interval}, ratio={self.ratio_option!r}"


Gradients = tuple[Tensor | None, ...]


def gradients(value: Tensor, params: Sequence[Tensor]) -> Gradients:
    """``d value / d params`` (``None`` for a parameter ``value`` does not reach), keeping the graph."""
    return torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)


def gradient_norm(grads: Gradients) -> float:
    """The L2 norm of a set of gradients."""
    return float(torch.sqrt(sum(g.pow(2).sum() for g in grads if g is not None) + 0.0))


class BalancingStep:
    """One training step on which self-set weights re-set themselves.

    The task loss's gradient is computed once, each balanced penalty's once; the weights are set from their norms
    (``reduce`` averages the two norms over processes under DDP), and :meth:`backward` builds the step's gradients
    from them. ``params``: the trainable parameters the norms are taken over.
    """

    def __init__(
        self, task_loss: Tensor, params: Sequence[Tensor], reduce: Callable[[list[float]], list[float]] | None = None
    ) -> None:
        self.task_loss, self.params = task_loss, list(params)
        self.reduce = reduce or (lambda values: values)
        self.task: Gradients | None = None
        self.penalties: dict[int, Gradients] = {}

    @classmethod
    def run(
        cls,
        task_loss: Tensor,
        due: Sequence[tuple[EquivarianceRegularizer, Tensor]],
        params: Sequence[Tensor],
        reduce: Callable[[list[float]], list[float]] | None = None,
    ) -> BalancingStep | None:
        """Balance every ``(term, penalty)`` in ``due`` whose penalty has a gradient; ``None`` if none has."""
        due = [(term, penalty) for term, penalty in due if penalty.requires_grad]
        if not due:
            return None
        step = cls(task_loss, params, reduce)
        for term, penalty in due:
            step.balance(term, penalty)
        return step

    def balance(self, term: EquivarianceRegularizer, penalty: Tensor) -> None:
        """Set ``term``'s weight from this step's ``penalty`` (the norm of the unscaled penalty: / ``term.every``)."""
        if self.task is None:
            self.task = gradients(self.task_loss, self.params)
            self.task_norm = gradient_norm(self.task)
        self.penalties[id(term)] = gradients(penalty, self.params)
        unscaled = [gradient_norm(self.penalties[id(term)]) / term.every, float(penalty.detach()) / term.every]
        task_norm, penalty_norm, value = self.reduce([self.task_norm, *unscaled])
        term.balance(task_norm, penalty_norm, value)

    def backward(
        self, regularizers: Sequence[Regularizer], terms: Sequence[Tensor], extra: Sequence[Tensor], epoch: float
    ) -> None:
        """Fill ``.grad`` as ``(task + Σ terms + Σ extra).backward()`` would: a regularizer whose components were all
        balanced adds ``factor x`` their gradients computed here (its loss is linear in them); the other terms and
        ``extra`` (e.g. a strategy's loss) are back-propagated."""
        total = list(self.task)
        rest = []
        for reg, term in zip(regularizers, terms):
            components = reg.components()
            if not all(id(c) in self.penalties for c in components):
                rest.append(term)
                continue
            for component, factor in zip(components, reg.factors(epoch)):
                grads, scale = self.penalties[id(component)], float(factor)
                total = [a if b is None else (b * scale if a is None else a + b * scale) for a, b in zip(total, grads)]
        rest = [t for t in [*rest, *extra] if isinstance(t, Tensor) and t.requires_grad]
        if rest:
            sum(rest[1:], rest[0]).backward()
        for p, g in zip(self.params, total):
            if g is not None:
                p.grad = g if p.grad is None else p.grad + g
