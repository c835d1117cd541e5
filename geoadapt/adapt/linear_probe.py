"""``linear_probe``: only the head trains; the backbone stays bit-identical."""

from __future__ import annotations

from torch import nn

from geoadapt.adapt.base import Strategy, register_strategy
from geoadapt.adapt.freezing import head_module, linear_probe


@register_strategy
class LinearProbe(Strategy):
    """Train the head (``options.head``) only. With ``head_policy="new"`` that is a fresh head."""

    name = "linear_probe"

    def check(self, model: nn.Module) -> None:
        head_module(model, self.options.head)

    def select(self, model: nn.Module) -> None:
        self.trainable = linear_probe(model, self.options.head)

    def describe(self) -> str:
        return f"linear probe: {len(self.trainable)} head tensors train, backbone frozen"
