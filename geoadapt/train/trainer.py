"""The Trainer: adapt a model with a task's loss + equivariance regularizers, measured every epoch.

The Trainer is the loop; what differs between tasks (targets, scaler, loss, metrics, the view regularizers see,
set-up) is the :class:`~geoadapt.tasks.Task`'s. The step is in :mod:`~geoadapt.train.step`, measuring in
:mod:`~geoadapt.train.evaluation`, the resumable state in :mod:`~geoadapt.train.resume`, the run folder's files in
:mod:`~geoadapt.train.run_files` and progress reports in :mod:`~geoadapt.train.progress`.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geoadapt.adapt.strategies import Strategy
from geoadapt.devices import check_materialized, full_precision, resolve_device, resolve_precision, to_device
from geoadapt.groups import Group
from geoadapt.models.predictor import network_of
from geoadapt.regularizers import Regularizer, constraint_verdict
from geoadapt.runs import run_name
from geoadapt.spec import Spec
from geoadapt.tasks import Task, make_task
from geoadapt.train import distributed, evaluation, resume, run_files, setup, step
from geoadapt.train.evaluation import default_group
from geoadapt.train.options import TrainingOptions, make_optimizer, make_scheduler, step_scheduler
from geoadapt.train.progress import Progress
from geoadapt.train.stopping import EarlyStopping

log = logging.getLogger("geoadapt")
__all__ = ["Trainer", "default_group"]


class Trainer:
    """Adapt ``model`` on a task, with regularizers, an adaptation strategy and equivariance metrics per epoch.

    Args:
        model: takes a batch (PyG ``Batch`` or a tensor) and returns ``(rows, spec.output.dim)``; a
            :class:`~geoadapt.models.Predictor` (what :func:`geoadapt.checkpoints.load` returns for a regressor) trains
            its network, starting from its scaler.
        task: a :class:`~geoadapt.tasks.Task` (e.g. ``Potential(force_weight=10)``) or a registered name
            (``"regression"``, ``"classification"``, ``"potential"`` or yours) with its ``task_options``
            (e.g. ``{"keep_normalization": True}``); see :mod:`geoadapt.tasks`.
        regularizers: equivariance regularizers (plain, mixed or constrained): ``nn.Module`` s implementing
            :class:`~geoadapt.regularizers.Regularizer` (constraints: :class:`~geoadapt.regularizers.Constraint`);
            build them on ``task.output_spec`` (the force Spec for potentials).
        strategy: a :class:`Strategy` (applied here if it is not yet), a strategy name (see
            ``geoadapt.adapt.STRATEGIES``; its options in ``strategy_options``) or None (train the model as it is).
        groups: groups to measure equivariance under each epoch (names or groups); default: the regularizers',
            or, without regularizers, one inferred from the data (:func:`default_group`); ``[]`` measures none.
        max_epochs: epochs to train; ``lr``, ``weight_decay``, ``seed``, ``grad_clip``, ``scheduler``,
            ``scheduler_options``, ``early_stopping``, ``patience``, ``eq_samples`` and ``stack`` likewise set
            :class:`~geoadapt.train.options.TrainingOptions` (``trainer.options``): AdamW, a learning-rate schedule,
            early stopping on a validation metric (the best weights restored at the end).
        run_dir: where ``metrics.csv``, ``history.json``, checkpoints (``last.pt``, ``best.pt``) and, at the end,
            the plots (``loss.png``, ``metrics.png``, ``equivariance_error.png``, ``error_vs_angle.png``: those of
            the command line's run folders, :mod:`geoadapt.plots`) go.
        resume: continue from ``run_dir/last.pt`` when it exists.
        spec: the model's Spec when it has no ``spec`` attribute.
        progress: ``False``: silent; otherwise a bar on a terminal and one line per epoch elsewhere (a log file).
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a
            ``torch.device``; the model and every batch move there (under torchrun each rank uses
            ``cuda:LOCAL_RANK``). CUDA without a GPU is an error, not a fall back to the CPU.
        precision: ``"32"``, ``"bf16"`` or ``"fp16"`` (CUDA only, with a gradient scaler): autocast for the
            training forward and loss; :meth:`evaluate` always measures in the model's own dtype.
    """

    def __init__(
        self,
        model: nn.Module,
        task: Task | str = "regression",
        regularizers: Sequence[Regularizer] = (),
        strategy: Strategy | str | None = None,
        groups: Sequence[Group | str] | None = None,
        max_epochs: int = 50,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        seed: int = 0,
        grad_clip: float | None = 10.0,
        scheduler: str | None = None,
        scheduler_options: dict[str, Any] | None = None,
        early_stopping: str | None = None,
        patience: int = 10,
        run_dir: str | os.PathLike | None = None,
        resume: bool = False,
        eq_samples: int = 4,
        spec: Spec | None = None,
        stack: bool | None = None,
        progress: bool | None = None,
        strategy_options: dict[str, Any] | None = None,
        task_options: dict[str, Any] | None = None,
        device: str | torch.device = "auto",
        precision: str = "32",
    ) -> None:
        self.task = make_task(task, task_options)
        self.options = TrainingOptions(
            max_epochs, lr, weight_decay, seed, grad_clip, scheduler, scheduler_options or {}, early_stopping,
            patience, eq_samples, stack,
        )  # fmt: skip
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume, self.progress = resume, progress
        self.device = distributed.local_device(resolve_device(device))
        self.precision = resolve_precision(precision, self.device)
        check_materialized(model)  # weights on the meta device: an error here, never made up by a move
        _seed_everything(seed)
        self.spec = spec or getattr(model, "spec", None)
        if self.spec is None:
            raise ValueError("spec: expected model.spec or a spec= argument, got neither")
        self.task.bind(model, self.spec)
        self._take_regularizers(regularizers, groups)
        group = self.groups[0] if self.groups else None
        self.strategy = setup.resolve_strategy(strategy, model, self.spec, group, strategy_options)
        self.model = self.strategy.model.to(self.device)
        self.regularizers.to(self.device)
        self.grad_scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.base_model = network_of(model)
        self.history: list[dict[str, float]] = []
        self.epoch, self.global_step = 0, 0
        self.stopping = EarlyStopping(self.options.early_stopping, self.options.patience, self.task.higher_is_better)
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.error_by_angle: dict[int, float] = {}  # degrees -> error, measured for the run folder's plot

    def _take_regularizers(self, regularizers: Sequence[Regularizer], groups: Sequence[Group | str] | None) -> None:
        """Keep the regularizers, their components (distances resolved by the task), constraints and groups."""
        self.regularizers = setup.checked_regularizers(regularizers)
        self.components = setup.components_of(self.regularizers, self.task)
        # Self-setting weights apply to plain regularizers used on their own (mixed and constrained forms
        # set their strengths themselves).
        self.balanced = [c for r in self.regularizers for c in r.balanced()]
        self.constrained = setup.constraints_of(self.regularizers)
        self.constraints: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self._forecast_misses: set[str] = set()  # the constraints already said to miss their bound
        self.infer_groups = groups is None and not self.components
        self.groups = setup.resolve_groups(groups, self.components)

    # --- training ------------------------------------------------------------------------------
    def fit(
        self, train_loader: Iterable, val_loader: Iterable | None = None, epochs: int | None = None
    ) -> list[dict[str, float]]:
        """Train up to ``max_epochs`` (or until early stopping); returns the per-epoch history.

        ``epochs`` caps how many epochs this call runs (a later ``fit`` with ``resume=True`` goes on).
        """
        ddp = distributed.setup(self.device)
        self.task.prepare(train_loader)  # the whole training set, before sharding
        train_loader = distributed.shard_loader(train_loader) if ddp else train_loader
        self._start(train_loader)
        forward_model = distributed.wrap(self.model, self.device) if ddp else self.model
        last = self.options.max_epochs if epochs is None else min(self.options.max_epochs, self.epoch + epochs)
        progress = Progress(
            self.progress if distributed.is_main() else False, self.epoch, self.options.max_epochs,
            self.task.headline_metric,
        )  # fmt: skip
        for epoch in range(self.epoch, last):
            row = self._epoch(forward_model, train_loader, val_loader, epoch)
            progress.epoch_done(row)
            if self._stops(row):
                log.info("early stopping at epoch %d", epoch)
                break
        progress.close()
        self._finish(val_loader)
        del forward_model  # the DDP wrapper holds the process group: release it before leaving the group
        distributed.teardown(ddp)
        return self.history

    def _start(self, train_loader: Iterable) -> None:
        """Before the first epoch: the task's scaler on the network, lazy layers, output check, task set-up,
        optimizer, and the state of an interrupted run."""
        self.base_model.target_scaler = self.task.scaler
        self._check_model(train_loader)
        if self.epoch == 0:
            self.task.setup(self.model, train_loader)
        if self.optimizer is None:  # a later fit() call continues with the same optimizer state
            groups = self.strategy.param_groups(self.options.lr)
            reg_params = [p for p in self.regularizers.parameters() if p.requires_grad]
            if reg_params:
                groups.append({"params": reg_params, "lr": self.options.lr})
            self.optimizer = make_optimizer(groups, self.options)
            self.scheduler = make_scheduler(self.optimizer, self.options)
        if self.resume and self.run_dir is not None and (self.run_dir / "last.pt").is_file():
            resume.load_state(self, self.run_dir / "last.pt")
            self.base_model.target_scaler = self.task.scaler  # the interrupted run's, restored with it

    def _check_model(self, loader: Iterable) -> None:
        """One forward on the first batch: creates lazily built layers (``nn.LazyLinear``) before the optimizer,
        and checks the output's shape against the Spec before any loss is computed (one ``ValueError``)."""
        lazy = any(isinstance(p, nn.parameter.UninitializedParameter) for p in self.model.parameters())
        # A check only, unless layers are lazy: leave the global RNG (a shuffling loader draws from it) as it was.
        with torch.random.fork_rng(devices=[], enabled=not lazy):
            inputs, _ = to_device(self.task.split(next(iter(loader))), self.device)
            was_training = self.model.training
            if not lazy:
                self.model.eval()  # no dropout draws, no batch-norm statistics
            with torch.no_grad():
                out = self.model(inputs)
            self.model.train(was_training)
        self.task.check_output(out, inputs, self.base_model)

    def _epoch(self, model: nn.Module, train_loader: Iterable, val_loader: Iterable | None, epoch: int) -> dict:
        """Train and measure one epoch; record and write its row."""
        row = step.train_epoch(self, model, train_loader, epoch)
        if val_loader is not None:
            row.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
        evaluation.measure_constraints(self, val_loader, row)
        for reg in self.regularizers:
            row.update(reg.log())
        self.history.append(row)
        self.epoch = epoch + 1
        for message in evaluation.epoch_warnings(self, self._forecast_misses):
            self.warnings.append(message)
            log.warning(message)
        return row

    def _stops(self, row: dict[str, float]) -> bool:
        """Early stopping, the scheduler step and the epoch's files; whether to stop."""
        improved, stop = self.stopping.update(row, len(self.history) - 1, self.model)
        if improved and distributed.is_main():
            resume.save_state(self, "best.pt")
        step_scheduler(self.scheduler, self.options, row)
        if distributed.is_main() and self.run_dir is not None:
            run_files.write_history(self.run_dir, self.history)
            resume.save_state(self, "last.pt")
        return stop

    def _finish(self, val_loader: Iterable | None) -> None:
        """Restore the best weights, measure the constraints on them, say what failed, write the plots."""
        if self.stopping.best is not None:
            self.model.load_state_dict(self.stopping.best[1])
            evaluation.measure_constraints(self, val_loader, None)  # the restored weights are the ones reported
        self.constraints = [reg.report() for reg in self.constrained]
        messages = [constraint_verdict(c) for c in self.constraints if not c["met"]]
        for message in messages + self.task.final_checks(self.history):
            self.warnings.append(message)
            log.warning(message)
        if self.run_dir is not None and distributed.is_main() and self.history:
            title = run_name(self.run_dir)
            self.error_by_angle = run_files.write_figures(self, val_loader, self.run_dir, title)

    # --- evaluation ----------------------------------------------------------------------------
    def predictor(self) -> nn.Module:
        """The model answering in target units (the task's scaler inverted after it, if any), in eval mode."""
        return self.task.predictor(self.model).eval()

    @torch.no_grad()
    def evaluate(self, loader: Iterable) -> dict[str, float]:
        """Task metrics (target units) and, per group, the equivariance of what the task's view sees.

        Keys: the task's metrics (:meth:`~geoadapt.tasks.Task.metrics`), ``equivariance_error`` (mean relative
        error; relative to :meth:`~geoadapt.tasks.Task.equivariance_scale`, for regression the targets' spread),
        ``equivariance_score``, ``equivariance_abs/<block>`` (mean absolute error of each output block, target
        units) and, for classifiers, ``consistency``; error and consistency come from the same transformed
        outputs. With one group the keys are plain; with several they are also suffixed by the group's name
        (``equivariance_error/SO3``). Potentials measure the equivariance of the forces.
        """
        with full_precision(self.device):  # measured in the model's dtype even inside an autocast region
            return evaluation.evaluate(self, loader)

    @torch.no_grad()
    def task_metrics(self, loader: Iterable) -> dict[str, float]:
        """The task metrics of :meth:`evaluate` alone, without measuring any group."""
        with full_precision(self.device):
            metrics = self.task.metrics(self.predictor(), evaluation.pairs_of(self, loader))
        self.model.train()
        return metrics

    def state(self) -> dict[str, Any]:
        """Everything needed to resume: weights, optimizer, scheduler, regularizers, task, RNGs, epoch, history."""
        return resume.trainer_state(self)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
