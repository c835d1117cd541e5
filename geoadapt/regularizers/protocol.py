"""The regularizer interface: what a training loop (geoadapt's Trainer, a loop of your own, a LightningModule)
needs of a regularizer, written down as protocols the Trainer types against."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from torch import Tensor

from geoadapt.regularizers.equivariance import EquivarianceRegularizer


@runtime_checkable
class Regularizer(Protocol):
    """A regularizer: base terms whose copies join the training forward, and a loss linear in their penalties.

    One training step: the loop computes the unweighted penalty of every component (one planned forward,
    :func:`~geoadapt.regularizers.stacked_forward`), adds ``loss(penalties, epoch)`` to the task loss, steps the
    optimizer, then calls ``end_step`` with the penalties as numbers; after each epoch ``end_epoch`` with their
    epoch means. ``loss`` is ``Σ_k factors(epoch)[k] · (penalties[k] - bound_k)`` (``bound_k`` without gradient):
    the balancing step reuses each balanced component's gradient times its factor
    (:class:`~geoadapt.regularizers.balance.BalancingStep`). geoadapt's regularizers implement it by subclassing
    :class:`~geoadapt.regularizers.base.RegularizerModule`, which also makes them callable in any loop.
    """

    name: str

    def components(self) -> Sequence[EquivarianceRegularizer]:
        """The base terms, one penalty each, in the order ``loss`` takes them."""
        ...

    def balanced(self) -> Sequence[EquivarianceRegularizer]:
        """The components whose weight sets itself from gradient norms on their balancing steps."""
        ...

    def factors(self, epoch: float) -> Sequence[Tensor | float]:
        """The factor multiplying each component's penalty in ``loss`` at ``epoch``."""
        ...

    def loss(self, penalties: Sequence[Tensor], epoch: float) -> Tensor:
        """The contribution to the training loss, at ``epoch`` (fractional within an epoch)."""
        ...

    def end_step(self, penalties: Sequence[float], step: int) -> None:
        """After the optimizer step of training step ``step``, with that step's penalties."""
        ...

    def end_epoch(self, means: Sequence[float] | None = None) -> None:
        """After each epoch, with the epoch-mean penalties."""
        ...

    def log(self) -> dict[str, float]:
        """Numbers worth logging every epoch."""
        ...


@runtime_checkable
class Constraint(Regularizer, Protocol):
    """A regularizer that bounds ``E[R]`` of its ``term``: the loop measures ``E[R]`` on held-out data after each
    epoch (:func:`~geoadapt.regularizers.mean_penalty`) and hands it over (``record``); ``report`` says at the end
    whether the bound holds. A constraint that can forecast also has ``outlook(epochs_left)`` (with a ``state``)
    and ``verdict(epochs_left)`` (one line); the Trainer then warns the epoch a miss is forecast."""

    term: EquivarianceRegularizer

    def record(self, value: float) -> None:
        """``E[R]`` measured on held-out data."""
        ...

    def report(self) -> dict[str, float | bool | str]:
        """Whether the bound holds on the last measurement, and by how much it misses."""
        ...
