"""``finetune``: every parameter trains (except those the model had frozen)."""

from __future__ import annotations

from geoadapt.adapt.base import Strategy, register_strategy


@register_strategy
class Finetune(Strategy):
    """Full fine-tuning. Options: only the head policy (:class:`~geoadapt.adapt.options.StrategyOptions`)."""

    name = "finetune"

    def describe(self) -> str:
        return "finetune: every parameter trains"
