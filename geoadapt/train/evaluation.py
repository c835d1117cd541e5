"""Measuring a Trainer's model: task metrics in target units, equivariance per group, constraints on held-out data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from geoadapt.devices import to_device
from geoadapt.groups import Group
from geoadapt.metrics.equivariance import measure_equivariance
from geoadapt.regularizers import mean_penalty
from geoadapt.spec import Spec
from geoadapt.structure import is_graph
from geoadapt.tasks import Pair

if TYPE_CHECKING:
    from geoadapt.train.trainer import Trainer


def default_group(spec: Spec, inputs: Any) -> Group:
    """The symmetry to measure when none was named: SO3 if the Spec has positions, else permutations of
    graph nodes, else C4 for images."""
    from geoadapt.groups import SO3, Cyclic, Permutation

    if is_graph(inputs):
        return SO3() if spec.positions and all(p in inputs for p in spec.positions) else Permutation()
    return Cyclic(4) if getattr(inputs, "dim", lambda: 0)() == 4 else SO3()


def pairs_of(trainer: Trainer, loader: Iterable) -> list[Pair]:
    """The loader's batches as the task splits them, on the trainer's device."""
    return [to_device(trainer.task.split(batch), trainer.device) for batch in loader]


def evaluate(trainer: Trainer, loader: Iterable) -> dict[str, float]:
    """The task's metrics of the trainer's predictor on ``loader`` and the equivariance of what the task's view
    sees of it under each group (see :meth:`Trainer.evaluate`)."""
    predictor = trainer.predictor()
    pairs = pairs_of(trainer, loader)
    metrics = trainer.task.metrics(predictor, pairs)
    measure_groups(trainer, trainer.task.view(predictor), [inputs for inputs, _ in pairs], metrics)
    return metrics


def measure_groups(trainer: Trainer, view: nn.Module, batches: list, metrics: dict[str, float]) -> None:
    """Add the equivariance metrics of ``view`` under each of the trainer's groups to ``metrics``."""
    if trainer.infer_groups and not trainer.groups:
        trainer.groups = [default_group(trainer.spec, batches[0])]
    generator = torch.Generator().manual_seed(trainer.options.seed)
    task, spec, samples = trainer.task, trainer.task.output_spec, trainer.options.eq_samples
    scale, consistency = task.equivariance_scale(), task.measures_consistency
    for i, group in enumerate(trainer.groups):
        m = measure_equivariance(view, batches, group, spec, samples, generator, scale, classifier=consistency)
        values = {"equivariance_error": m.error, "equivariance_score": m.score}
        values.update({f"equivariance_abs/{block}": v for block, v in m.absolute_by_block().items()})
        if consistency:
            values["consistency"] = m.consistency
        for k, v in values.items():
            if i == 0:
                metrics[k] = v
            if len(trainer.groups) > 1:
                metrics[f"{k}/{group!r}"] = v
    trainer.model.train()


def measure_constraints(trainer: Trainer, val_loader: Iterable | None, row: dict[str, float] | None) -> None:
    """``E[R]`` of each constrained term on the validation data (the training mean without any), recorded."""
    for reg in trainer.constrained:
        if val_loader is not None:
            inputs = [pair[0] for pair in pairs_of(trainer, val_loader)]
            generator = torch.Generator().manual_seed(trainer.options.seed + 1)
            view = trainer.task.view(trainer.model)
            value = mean_penalty(view, inputs, reg.term, trainer.task.output_spec, generator)
        elif row is not None:
            value = row[f"train_penalty/{reg.term.name}"]
        else:
            continue
        reg.record(value)


def epoch_warnings(trainer: Trainer, said: set[str]) -> list[str]:
    """What the last epoch shows, each said once: the task's checks (a classifier collapsing to one class) and
    every bound forecast to be missed (a constraint's ``outlook`` over the epochs left, where it has one).
    ``said`` holds the constraints already warned about (updated)."""
    messages = trainer.task.epoch_checks(trainer.history)
    left = trainer.options.max_epochs - trainer.epoch
    for reg in trainer.constrained:
        name = str(getattr(reg, "name", id(reg)))
        outlook = getattr(reg, "outlook", None)
        if name in said or outlook is None or outlook(left).state != "will miss":
            continue
        said.add(name)
        messages.append(reg.verdict(left))
    return [f"epoch {trainer.epoch - 1}: {m}" for m in messages]
