"""Comparable adaptation runs: one function per method family, shared by ``make demo`` and the benchmarks."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from geoadapt.adapt.augment import Augmentation
from geoadapt.checkpoints import load as load_model
from geoadapt.groups import O3, SO3, Group, Permutation
from geoadapt.models import build
from geoadapt.regularizers.from_config import regularizers_from_config
from geoadapt.tasks import Task
from geoadapt.train import Trainer
from geoadapt.train.from_config import trainer_from_config

# method -> (strategy, regularizer kind)
MOLECULAR_METHODS: dict[str, tuple[str, str | None]] = {
    "finetune": ("finetune", None),
    "linear_probe": ("linear_probe", None),
    "augment": ("augment", None),
    "frame_average": ("frame_average", None),
    "canonicalize": ("canonicalize", None),
    "regularizer": ("finetune", "regularizer"),
    "constrained": ("finetune", "constrained"),
    "mixed": ("finetune", "mixed"),
}


@dataclass
class MethodResult:
    """One adaptation run: test metrics, wall time of ``fit``, per-epoch history."""

    method: str
    seed: int
    metrics: dict[str, float]
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)
    notes: dict[str, Any] = field(default_factory=dict)
    trainer: Trainer | None = field(default=None, repr=False)

    def predictor(self) -> nn.Module:
        """The adapted model answering in target units."""
        return self.trainer.predictor()


def regularizers_for(kind: str | None, model: nn.Module, group: Group | None = None, **options: Any) -> list[nn.Module]:
    """The regularizers of a method, all with the library's defaults (nothing tuned per target).

    ``regularizer``: the plain regularizer (self-setting weight, the task's distance); ``constrained``: the
    constraint ``E[R] <= ε`` with the default ε; ``mixed``: SO(3) and O(3) with self-tuned shares. ``group``
    defaults to SO(3). ``options`` go to every ``EquivarianceRegularizer`` (e.g. ``balance_ratio=1.0``).
    """
    if kind is None:
        return []
    entry = {"group": group or SO3(), **options}
    configs = {
        "regularizer": {"regularizers": [entry]},
        "constrained": {"regularizers": [entry], "constrained": {}},
        "mixed": {"regularizers": [{**entry, "group": SO3()}, {**entry, "group": O3()}], "mixed": True},
    }
    if kind not in configs:
        raise ValueError(f"regularizer kind: expected None, 'regularizer', 'constrained' or 'mixed', got {kind!r}")
    return regularizers_from_config(configs[kind], model.spec)


def adapt_once(
    method: str,
    checkpoint: str | None,
    loaders: Sequence[Any],
    seed: int,
    epochs: int,
    lr: float,
    groups: Sequence[Group] = (SO3(), Permutation()),
    task: Task | str = "regression",
    progress: bool | None = False,
    regularizer_options: dict[str, Any] | None = None,
) -> MethodResult:
    """Adapt the pretrained checkpoint with ``method`` on ``loaders = (train, val, test)``; evaluate on test.

    ``checkpoint=None`` trains a fresh coordinate-naive GNN instead (seeded), the from-scratch reference.
    ``regularizer_options`` override the regularizers' defaults (see :func:`regularizers_for`).
    """
    if method not in MOLECULAR_METHODS:
        raise ValueError(f"method: expected one of {list(MOLECULAR_METHODS)}, got {method!r}")
    strategy, kind = MOLECULAR_METHODS[method]
    torch.manual_seed(seed)
    model = load_model(checkpoint) if checkpoint is not None else build("naive_gnn")
    config = {"epochs": epochs, "lr": lr, "seed": seed, "progress": progress, "groups": list(groups)}
    regularizers = regularizers_for(kind, model, groups[0] if groups else None, **(regularizer_options or {}))
    trainer = trainer_from_config(model, config, task, regularizers, strategy=strategy, eq_samples=4)
    start = time.perf_counter()
    trainer.fit(loaders[0], loaders[1])
    seconds = time.perf_counter() - start
    metrics = trainer.evaluate(loaders[2])
    if groups:
        metrics.update(moved_metrics(trainer, loaders[2], groups[0], seed))
    notes = {}
    for reg in trainer.regularizers:
        notes.update(reg.log())
    return MethodResult(method, seed, metrics, seconds, trainer.history, notes, trainer)


def moved_metrics(trainer: Trainer, loader: Iterable[Any], group: Group, seed: int) -> dict[str, float]:
    """Task metrics on ``loader``'s samples each moved by a random element of ``group`` (seeded), keys prefixed
    ``moved_`` (``moved_rmse``, ``moved_roc_auc``, ...).

    The test molecules come as the conformer generator left them, and RDKit's embedding aligns a molecule's
    principal axes with x, y, z (the longest along x for 94-99% of the training molecules of ESOL,
    ChEMBL2321810, Lipophilicity and BBBP): a model that reads raw coordinates can use the frame as information.
    On moved copies it scores what it would on molecules in any other frame.
    """
    move = Augmentation(group, trainer.spec)
    generator = torch.Generator().manual_seed(seed)
    metrics = trainer.task_metrics([move(batch, generator) for batch in loader])
    return {f"moved_{k}": v for k, v in metrics.items() if k != "predicted_majority"}


def summarize(results: Sequence[MethodResult], keys: Sequence[str]) -> dict[str, dict[str, float]]:
    """Mean and std over seeds of each metric (and ``seconds``), per method."""
    out: dict[str, dict[str, float]] = {}
    for method in dict.fromkeys(r.method for r in results):
        runs = [r for r in results if r.method == method]
        row: dict[str, float] = {}
        for key in [*keys, "seconds"]:
            values = [r.seconds if key == "seconds" else r.metrics[key] for r in runs]
            row[key] = statistics.mean(values)
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        out[method] = row
    return out


def pm(row: dict[str, float], key: str, fmt: str = ".3f") -> str:
    """``mean ± std`` of a summarized metric."""
    return f"{row[key]:{fmt}} ± {row[key + '_std']:{fmt}}"
