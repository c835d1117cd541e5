"""``freeze``: parameters matching name globs are frozen, the rest trains."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from geoadapt.adapt.base import Strategy, register_strategy
from geoadapt.adapt.freezing import freeze, matches
from geoadapt.adapt.options import StrategyOptions


@dataclass(frozen=True)
class FreezeOptions(StrategyOptions):
    """``patterns``: globs over parameter (or module) names, e.g. ``("convs.0.*", "input")``. Required:
    a freeze without patterns would silently be a fine-tune."""

    patterns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.patterns:
            raise ValueError(
                "strategy 'freeze' option 'patterns': expected at least one parameter-name glob "
                "(e.g. freeze=['convs.0.*']; strategy=finetune trains everything), got none"
            )


@register_strategy
class Freeze(Strategy):
    """Freeze what ``patterns`` match (``ValueError`` when they match nothing); everything else trains."""

    name = "freeze"
    Options = FreezeOptions

    def check(self, model: nn.Module) -> None:
        names = [n for n, _ in model.named_parameters()]
        if not any(matches(n, self.options.patterns) for n in names):
            raise ValueError(
                f"freeze patterns: expected to match parameter names like {names[:4]}, "
                f"got {list(self.options.patterns)} matching none"
            )

    def select(self, model: nn.Module) -> None:
        super().select(model)
        self.frozen = freeze(model, self.options.patterns)

    def describe(self) -> str:
        return f"freeze: {len(self.frozen)} tensors matching {list(self.options.patterns)} frozen, the rest trains"
