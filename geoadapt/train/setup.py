"""What a Trainer is built from, checked: regularizers, groups, the strategy and the model it trains."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import nn

from geoadapt.adapt.finetune import Finetune
from geoadapt.adapt.strategies import Strategy, make_strategy
from geoadapt.groups import Group, group_from_name
from geoadapt.models.predictor import network_of
from geoadapt.regularizers import Constraint, EquivarianceRegularizer, Regularizer
from geoadapt.spec import Spec
from geoadapt.tasks import Task


def checked_regularizers(regularizers: Sequence[Regularizer]) -> nn.ModuleList:
    """The regularizers as a ``ModuleList``; ``TypeError`` for anything that is not a Regularizer module."""
    for i, reg in enumerate(regularizers):
        if not isinstance(reg, Regularizer) or not isinstance(reg, nn.Module):
            raise TypeError(
                f"regularizers[{i}]: expected an nn.Module implementing geoadapt.regularizers.Regularizer, "
                f"got {type(reg).__name__}"
            )
    return nn.ModuleList(regularizers)


def components_of(regularizers: nn.ModuleList, task: Task) -> list[EquivarianceRegularizer]:
    """The base terms of every regularizer, with ``distance="auto"`` resolved to the task's default distance."""
    components = [c for r in regularizers for c in r.components()]
    for component in components:
        if component.distance == "auto":
            component.distance = task.default_distance
    return components


def constraints_of(regularizers: nn.ModuleList) -> list[Constraint]:
    """The regularizers that bound ``E[R]`` (measured on validation data each epoch)."""
    return [r for r in regularizers if isinstance(r, Constraint)]


def resolve_groups(groups: Sequence[Group | str] | None, components: Sequence[EquivarianceRegularizer]) -> list[Group]:
    """The groups measured each epoch: those named, else the regularizers' (none: inferred from the data later)."""
    if groups is None:
        return [c.group for c in components]
    return [group_from_name(g) if isinstance(g, str) else g for g in groups]


def resolve_strategy(
    strategy: Strategy | str | None,
    model: nn.Module,
    spec: Spec,
    group: Group | None,
    options: dict[str, Any] | None,
) -> Strategy:
    """The strategy applied to ``model``'s network: made from a name (with ``options``), applied when it is not
    yet, or (``None``) the model trained as it is (no head policy, ``requires_grad`` untouched)."""
    network = network_of(model)
    if isinstance(strategy, str):
        return make_strategy(strategy, network, spec, group, **(options or {}))
    if options:
        raise ValueError(f"strategy_options: expected them with a strategy name, got {strategy!r}")
    if strategy is None:
        strategy = Finetune()
        strategy.attach(network, spec, group, record=False)
    elif strategy.model is None:
        strategy.apply(network, spec, group)
    return strategy
