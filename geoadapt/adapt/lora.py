"""``lora``: low-rank adapters on linear layers (irreps-wise ones on e3nn ``o3.Linear``); only they train."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from geoadapt.adapt.adapters import adaptable_layers, adapter_parameters, add_adapters
from geoadapt.adapt.base import Strategy, register_strategy
from geoadapt.adapt.freezing import head_module
from geoadapt.adapt.options import StrategyOptions


@dataclass(frozen=True)
class LoRAOptions(StrategyOptions):
    """``rank`` of the adapters (e3nn layers get ``max(1, rank // 2)`` per irrep), ``alpha`` (scale
    ``alpha / rank``), ``targets``: globs over module names to wrap."""

    rank: int = 4
    alpha: float = 1.0
    targets: tuple[str, ...] = ("*",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rank < 1:
            raise ValueError(f"strategy 'lora' option 'rank': expected an int >= 1, got {self.rank}")
        if not self.targets:
            raise ValueError("strategy 'lora' option 'targets': expected at least one module-name glob, got none")


@register_strategy
class LoRA(Strategy):
    """Adapters start at zero (same outputs as the pretrained model); the wrapped layers are frozen.

    With ``head_policy="new"`` the fresh head gets no adapter and trains in full.
    """

    name = "lora"
    Options = LoRAOptions

    def check(self, model: nn.Module) -> None:
        if self.options.head_policy == "new":
            head_module(model, self.options.head)
        if not adaptable_layers(model, self.options.targets, self._exclude()):
            raise ValueError(
                f"strategy 'lora' option 'targets': expected globs matching Linear layers"
                f"{' outside the new head' if self._exclude() else ''}, got {list(self.options.targets)} matching none"
            )

    def _exclude(self) -> tuple[str, ...]:
        return (self.options.head,) if self.options.head_policy == "new" else ()

    def build(self, model: nn.Module) -> nn.Module:
        options = self.options
        self.wrapped = add_adapters(model, options.rank, options.targets, options.alpha, self._exclude())
        return model

    def select(self, model: nn.Module) -> None:
        for p in model.parameters():
            p.requires_grad_(False)
        for p in adapter_parameters(model):
            p.requires_grad_(True)
        if self.options.head_policy == "new":
            for p in head_module(model, self.options.head).parameters():
                p.requires_grad_(True)

    def describe(self) -> str:
        new_head = f"; the new head '{self.options.head}' trains in full" if self.options.head_policy == "new" else ""
        return f"lora: rank-{self.options.rank} adapters on {len(self.wrapped)} layers, only they train{new_head}"
