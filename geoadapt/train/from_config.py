"""A Trainer from a plain configuration: the one place where configuration keys become Trainer arguments.

``geoadapt pretrain``, ``geoadapt adapt``, :func:`geoadapt.pretrain` and :func:`geoadapt.experiments.adapt_once`
all build their Trainer here, so a key means the same everywhere. Keys that are absent keep the Trainer's
own defaults.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from geoadapt.adapt.strategies import Strategy
from geoadapt.errors import ConfigError
from geoadapt.groups import Group, group_from_name
from geoadapt.tasks import Task
from geoadapt.train.trainer import Trainer

# configuration key -> Trainer argument
TRAINER_KEYS = {
    "epochs": "max_epochs",
    "lr": "lr",
    "seed": "seed",
    "groups": "groups",
    "early_stopping": "early_stopping",
    "patience": "patience",
    "resume": "resume",
    "progress": "progress",
    "device": "device",
    "precision": "precision",
}


def trainer_from_config(
    model: nn.Module,
    config: Mapping[str, Any],
    task: Task | str = "regression",
    regularizers: Sequence[nn.Module] = (),
    strategy: Strategy | str | None = None,
    **trainer_options: Any,
) -> Trainer:
    """A :class:`Trainer` for ``model`` with the settings of ``config``.

    Args:
        config: any of :data:`TRAINER_KEYS` (``epochs``, ``lr``, ``seed``, ``groups``, ``early_stopping``,
            ``patience``, ``resume``, ``progress``, ``device``, ``precision``), ``task_options`` (options of the
            task named by ``task``, e.g. ``{"force_weight": 10}`` for potentials) and ``augment``: a group (or its
            name) to train with one random element per sample per step (the ``augment`` strategy, and the group
            measured each epoch).
        task: a :class:`~geoadapt.tasks.Task` or a registered task name.
        regularizers, strategy: as in :class:`Trainer` (``augment`` sets the strategy: give one or the other).
        trainer_options: further :class:`Trainer` arguments (e.g. ``run_dir``, ``eq_samples``); they win over
            ``config``.
    """
    options = {argument: config[key] for key, argument in TRAINER_KEYS.items() if key in config}
    if config.get("task_options"):
        options["task_options"] = dict(config["task_options"])
    augment = config.get("augment")
    if augment is not None:
        if strategy is not None:
            raise ConfigError(f"augment: expected no strategy beside it (it is one), got strategy {strategy!r}")
        group = augment if isinstance(augment, Group) else group_from_name(augment)
        strategy, options["groups"] = "augment", [group]
    options.update(trainer_options)
    return Trainer(model, task, regularizers, strategy=strategy, **options)
