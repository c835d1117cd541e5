"""What every geoadapt regularizer shares: a call any training loop can make, ``penalty = reg(model, batch)``; a
loss linear in its penalties, built from ``factors`` and ``bounds``; and the per-step and per-epoch hooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from geoadapt.regularizers.balance import BalancingStep
from geoadapt.regularizers.penalties import stacked_forward
from geoadapt.structure import AnyData

if TYPE_CHECKING:
    from geoadapt.regularizers.equivariance import EquivarianceRegularizer


class RegularizerModule(nn.Module):
    """Base class of the regularizers (implements :class:`~geoadapt.regularizers.protocol.Regularizer`).

    Subclasses say which base terms they copy for (:meth:`components`), the factor multiplying each term's penalty
    in the loss (:meth:`factors`) and, where a constraint sets one, the level it is measured from (:meth:`bounds`);
    per-step and per-epoch updates go in :meth:`end_step` and :meth:`epoch_update`.

    In a training loop of your own, ``reg(model, batch)`` is the weighted, differentiable penalty to add to the task
    loss (:meth:`forward`); call :meth:`end_epoch` after each epoch. State (buffers): ``steps_taken`` (training calls)
    and ``epoch`` (finished epochs).
    """

    name: str

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("steps_taken", torch.tensor(0))
        self.register_buffer("epoch", torch.tensor(0))
        self._sums: list[float] = []
        self._calls = 0
        self._pending: tuple[list[float], int] | None = None

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        # States saved before a regularizer could be called in any loop have no step or epoch count: they resume at
        # zero, instead of failing on a missing key.
        state_dict.setdefault(prefix + "steps_taken", torch.tensor(0))
        state_dict.setdefault(prefix + "epoch", torch.tensor(0))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # --- what a regularizer defines -----------------------------------------------------------
    def components(self) -> list[EquivarianceRegularizer]:
        """The base terms whose copies join the forward, one penalty each."""
        raise NotImplementedError

    def factors(self, epoch: float) -> list[Tensor | float]:
        """The factor multiplying each component's penalty in :meth:`loss` at ``epoch`` (fractional within one)."""
        raise NotImplementedError

    def bounds(self) -> list[Tensor | float]:
        """The level each penalty is measured from in :meth:`loss` (0 unless a constraint sets one)."""
        return [0.0] * len(self.components())

    def balanced(self) -> list[EquivarianceRegularizer]:
        """The components whose weight sets itself from gradient norms (their
        :class:`~geoadapt.regularizers.balance.AutoWeight`)."""
        return []

    def end_step(self, penalties: Sequence[float], step: int) -> None:
        """After training step ``step`` (its optimizer step taken), with that step's penalties (one per component)."""

    def epoch_update(self, means: Sequence[float]) -> None:
        """After each epoch, with the epoch-mean penalties (one per component)."""

    def log(self) -> dict[str, float]:
        """Numbers worth logging every epoch."""
        return {}

    # --- built on them --------------------------------------------------------------------------
    def loss(self, penalties: Sequence[Tensor], epoch: float) -> Tensor:
        """``Σ_k factor_k · (penalty_k - bound_k)``: linear in each penalty by construction, which the balancing step
        relies on (:meth:`~geoadapt.regularizers.balance.BalancingStep.backward`)."""
        return sum(f * (p - b) for f, p, b in zip(self.factors(epoch), penalties, self.bounds()))

    def end_epoch(self, means: Sequence[float] | None = None) -> None:
        """Close an epoch: :meth:`epoch_update` with ``means`` (default: the mean penalties of this epoch's training
        calls of :meth:`forward`; without either, only the epoch count moves), then the next epoch begins."""
        self._flush()
        if means is None and self._calls:
            means = [s / self._calls for s in self._sums]
        if means is not None:
            self.epoch_update(list(means))
        self.epoch += 1
        self._sums, self._calls = [], 0

    def forward(
        self,
        model: nn.Module,
        batch: AnyData,
        outputs: Tensor | None = None,
        task_loss: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """The weighted, differentiable penalty of ``model`` on ``batch``, to add to the task loss.

        Copies of ``batch`` are sampled and run through ``model`` (stacked with ``batch`` unless the model says
        otherwise); ``outputs``, the model's outputs on ``batch`` from the task's forward, spare running the batch
        again (not used where dropout or batch norm train, or for feature terms: those need their own forward).
        ``task_loss``: pass it to keep a self-set weight (``weight="auto"``): on the steps where it re-sets itself,
        every sample is copied and the weight is set from the gradient norms of ``task_loss`` and the penalty over
        ``model``'s trainable parameters, as the Trainer does. A call with gradients on (in training mode) is one
        training step: lazy terms (``every``) skip or scale, and the per-step hook of the previous call runs first.
        Under ``torch.no_grad()`` it is a measurement: every term, unscaled, no step counted.
        """
        self._flush()
        training = self.training and torch.is_grad_enabled()
        step = int(self.steps_taken) if training else None
        terms = self.components()
        due = [t for t in self.balanced() if task_loss is not None and step is not None and t.balances_at(step)]
        _, penalties = stacked_forward(model, batch, terms, generator, step=step, whole=due, outputs=outputs)
        if due:
            trainable = [p for p in model.parameters() if p.requires_grad]
            BalancingStep.run(task_loss, [(t, penalties[terms.index(t)]) for t in due], trainable)
        if training:
            values = [float(p.detach()) for p in penalties]
            self._sums = [a + b for a, b in zip(self._sums, values)] if self._sums else values
            self._calls += 1
            self._pending = (values, step)
            self.steps_taken += 1
        return self.loss(penalties, float(self.epoch))

    def _flush(self) -> None:
        """The per-step hook of the last training call, once its optimizer step is behind it."""
        if self._pending is not None:
            values, step = self._pending
            self._pending = None
            self.end_step(values, step)
