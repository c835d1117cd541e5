"""``group_average``: the model averaged over a group, ``mean_g ρ_out(g)^{-1} f(g·x)``."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from geoadapt.adapt.base import Strategy, register_strategy
from geoadapt.adapt.options import StrategyOptions
from geoadapt.adapt.symmetrize import GroupAveraged


@dataclass(frozen=True)
class GroupAverageOptions(StrategyOptions):
    """``n_samples``: random elements per input and forward (Monte Carlo). ``None`` averages over every
    element of a finite group (exact); continuous groups need a number."""

    n_samples: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n_samples is not None and self.n_samples < 1:
            raise ValueError(f"strategy 'group_average' option 'n_samples': expected an int >= 1, got {self.n_samples}")


@register_strategy
class GroupAverage(Strategy):
    """Wraps the model in :class:`~geoadapt.adapt.symmetrize.GroupAveraged`; every parameter trains."""

    name = "group_average"
    Options = GroupAverageOptions
    uses_group = needs_group = True

    def check(self, model: nn.Module) -> None:
        if self.options.n_samples is None and not self.group.is_finite:
            raise ValueError(
                f"strategy 'group_average' option 'n_samples': expected an int for the continuous group "
                f"{self.group!r} (e.g. n_samples=8: a Monte Carlo average, approximately equivariant), got None"
            )

    def build(self, model: nn.Module) -> nn.Module:
        return GroupAveraged(model, self.group, self.spec, self.options.n_samples)

    def describe(self) -> str:
        how = "every element" if self.options.n_samples is None else f"{self.options.n_samples} random elements"
        return f"group average over {self.group!r} ({how} per input)"
