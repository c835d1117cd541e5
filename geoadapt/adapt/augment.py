"""``augment``: a random group element per sample per step, applied to inputs (and equivariant targets)."""

from __future__ import annotations

import torch
from torch import nn

from geoadapt.adapt.base import Strategy, register_strategy
from geoadapt.groups import Group
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, graph_index, is_graph


class Augmentation:
    """Callable batch transform ``batch -> g · batch``; graph targets ``y`` move by ``ρ_out(g)`` when not invariant."""

    def __init__(self, group: Group, spec: Spec) -> None:
        self.group, self.spec = group, spec
        self.invariant_targets = all(ir.l == 0 and ir.p == 1 for _, ir in spec.output)

    def __call__(self, batch: AnyData, generator: torch.Generator | None = None) -> AnyData:
        g = self.group.sample_like(batch, generator)
        moved = self.group.act(g, batch, self.spec)
        if is_graph(batch) and not self.invariant_targets and getattr(batch, "y", None) is not None:
            node_graph = graph_index(batch) if self.spec.output_level == "node" else None
            moved.y = self.group.act_output(g, batch.y, self.spec, node_graph)
        return moved

    def __repr__(self) -> str:
        return f"Augmentation({self.group!r})"


@register_strategy
class Augment(Strategy):
    """Train on ``g · batch`` with a random element of the group per sample per step; every parameter trains."""

    name = "augment"
    uses_group = needs_group = True

    def build(self, model: nn.Module) -> nn.Module:
        self.batch_transform = Augmentation(self.group, self.spec)
        return model

    def describe(self) -> str:
        return f"augment: a random {self.group!r} element per sample per step"
