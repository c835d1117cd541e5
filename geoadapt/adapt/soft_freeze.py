"""``soft_freeze``: parameters matching name globs train at a scaled learning rate (0: frozen)."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

from geoadapt.adapt.base import Strategy, register_strategy
from geoadapt.adapt.freezing import matches
from geoadapt.adapt.options import StrategyOptions


@dataclass(frozen=True)
class SoftFreezeOptions(StrategyOptions):
    """``lr_scales``: glob -> factor on the learning rate, e.g. ``{"convs.*": 0.1, "input": 0.0}``; the
    first matching glob wins, unmatched parameters train at the full rate. Required and non-negative."""

    lr_scales: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.lr_scales:
            raise ValueError(
                "strategy 'soft_freeze' option 'lr_scales': expected a mapping of globs to factors "
                "(e.g. {'convs.*': 0.1}), got none"
            )
        negative = {k: v for k, v in self.lr_scales.items() if v < 0}
        if negative:
            raise ValueError(f"strategy 'soft_freeze' option 'lr_scales': expected factors >= 0, got {negative}")


@register_strategy
class SoftFreeze(Strategy):
    """Per-glob learning-rate factors through :meth:`param_groups`; a factor 0 freezes (``requires_grad``)."""

    name = "soft_freeze"
    Options = SoftFreezeOptions

    def check(self, model: nn.Module) -> None:
        names = [n for n, _ in model.named_parameters()]
        unused = [pat for pat in self.options.lr_scales if not any(matches(n, [pat]) for n in names)]
        if unused:
            raise ValueError(
                f"strategy 'soft_freeze' option 'lr_scales': expected globs matching parameter names "
                f"like {names[:4]}, got {unused} matching none"
            )

    def select(self, model: nn.Module) -> None:
        self.lr_scales = dict(self.options.lr_scales)
        for name, p in model.named_parameters():
            scale = next((s for pat, s in self.lr_scales.items() if matches(name, [pat])), 1.0)
            p.requires_grad_(scale > 0)

    def describe(self) -> str:
        return f"soft freeze: learning-rate factors {self.options.lr_scales}"
