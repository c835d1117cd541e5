"""``frame_average``: the model averaged over the PCA frames of each input (Puny et al. 2022)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from geoadapt.adapt.base import Strategy, register_strategy
from geoadapt.adapt.options import StrategyOptions
from geoadapt.adapt.symmetrize import FrameAveraged


@dataclass(frozen=True)
class FrameAverageOptions(StrategyOptions):
    """``proper``: average over the 4 rotation frames only (SE(3)) instead of all 8 (E(3))."""

    proper: bool = False


@register_strategy
class FrameAverage(Strategy):
    """Wraps the model in :class:`~geoadapt.adapt.symmetrize.FrameAveraged`; every parameter trains."""

    name = "frame_average"
    Options = FrameAverageOptions

    def check(self, model: nn.Module) -> None:
        if not self.spec.positions:
            raise ValueError(
                f"strategy 'frame_average': expected a Spec with positions (3D graphs), got {self.spec.positions}"
            )

    def build(self, model: nn.Module) -> nn.Module:
        return FrameAveraged(model, self.spec, self.options.proper)

    def describe(self) -> str:
        return f"frame average over PCA frames ({'SE(3)' if self.options.proper else 'E(3)'})"
