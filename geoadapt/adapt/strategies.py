"""Adaptation strategies a config can name: ``make_strategy("linear_probe", model, spec, ...)``.

Each strategy is a class registered in :data:`STRATEGIES` (one module each in ``geoadapt.adapt``),
with a typed options dataclass; this module imports them all and gives the one-call entry point.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from geoadapt.adapt import (  # noqa: F401  (registration)
    augment,
    canonicalize,
    finetune,
    frame_average,
    freeze,
    group_average,
    linear_probe,
    lora,
    parity_average,
    soft_freeze,
)
from geoadapt.adapt.base import STRATEGIES, Strategy
from geoadapt.groups import Group
from geoadapt.spec import Spec


def make_strategy(
    name: str, model: nn.Module, spec: Spec | None = None, group: Group | None = None, **options: Any
) -> Strategy:
    """Apply strategy ``name`` (a key of :data:`STRATEGIES`) to ``model``; returns the applied strategy.

    ``options`` are the fields of that strategy's options dataclass (``head``, ``head_policy`` for all;
    e.g. ``patterns`` for ``freeze``, ``rank`` for ``lora``, ``n_samples`` for ``group_average``),
    checked by type. ``group`` is needed by ``augment``, ``group_average`` and (for images)
    ``canonicalize``; ``spec`` defaults to ``model.spec``. The head policy is applied first and logged.
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {tuple(STRATEGIES)}, got {name!r}")
    strategy = STRATEGIES[name](**options)
    strategy.apply(model, spec, group)
    return strategy
