"""The Trainer: adapt a model with task loss + equivariance regularizers, measured every epoch."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from geoadapt.adapt.finetune import Finetune
from geoadapt.adapt.strategies import Strategy, make_strategy
from geoadapt.devices import (
    autocast,
    check_materialized,
    full_precision,
    resolve_device,
    resolve_precision,
    to_device,
    upcast,
)
from geoadapt.equivariance import output_rows
from geoadapt.groups import Group, group_from_name
from geoadapt.metrics.equivariance import measure_equivariance
from geoadapt.metrics.task import classification_metrics, predicted_class, regression_metrics
from geoadapt.regularizers import (
    BalancingStep,
    Constraint,
    EquivarianceRegularizer,
    Regularizer,
    constraint_verdict,
    mean_penalty,
    stacked_forward,
)
from geoadapt.serialization import atomic_save, safe_load
from geoadapt.spec import Spec
from geoadapt.structure import is_graph
from geoadapt.train import distributed
from geoadapt.train.potential import (
    PotentialLoss,
    PotentialView,
    force_spec,
    has_energy_shift,
    potential_metrics,
    refit_shift,
)
from geoadapt.train.targets import Denormalized, fit_normalization, normalize, split_batch, target_scale

log = logging.getLogger("geoadapt")
TASKS = ("regression", "classification", "potential")
SCHEDULERS = (None, "cosine", "step", "plateau")


def _numpy_rng_state() -> list:
    """NumPy's global RNG state as plain data (its key array as a list), so resume states load with weights_only."""
    name, keys, *rest = np.random.get_state()
    return [name, keys.tolist(), *rest]


def default_group(spec: Spec, inputs: Any) -> Group:
    """The symmetry to measure when none was named: SO3 if the Spec has positions, else permutations of
    graph nodes, else C4 for images."""
    from geoadapt.groups import SO3, Cyclic, Permutation

    if is_graph(inputs):
        return SO3() if spec.positions and all(p in inputs for p in spec.positions) else Permutation()
    return Cyclic(4) if getattr(inputs, "dim", lambda: 0)() == 4 else SO3()


class Trainer:
    """Adapt ``model`` on a task, with regularizers, an adaptation strategy and equivariance metrics per epoch.

    Args:
        model: takes a batch (PyG ``Batch`` or a tensor) and returns ``(rows, spec.output.dim)``.
        task: ``"regression"`` (MSE on standardized targets, stored as ``model.normalization``),
            ``"classification"`` (one logit: binary cross-entropy; several: cross-entropy) or ``"potential"``
            (an energy model trained on ``energy`` and ``force`` labels, see :mod:`geoadapt.train.potential`:
            metrics ``energy_mae`` in meV/atom, ``force_rmse`` / ``force_mae`` in eV/Å, and the equivariance
            of the forces; regularizers take the force Spec, ``force_spec(model.spec)``).
        energy_weight, force_weight: weights of the potential task's energy (per atom) and force terms.
        refit_shift: potential task: refit the model's per-element energy shift by least squares on the
            training data before training (``None``: when the model has one, e.g. SevenNet).
        keep_normalization: reuse the target standardization the model carries (``model.normalization``,
            e.g. the source task's) instead of fitting it on this task's training targets (the default:
            a model adapted to a new task is trained on that task's scale).
        regularizers: equivariance regularizers (plain, mixed or constrained): ``nn.Module`` s implementing
            :class:`~geoadapt.regularizers.Regularizer` (constraints: :class:`~geoadapt.regularizers.Constraint`).
        strategy: a :class:`Strategy` (applied here if it is not yet), a strategy name (see
            ``geoadapt.adapt.STRATEGIES``; its options in ``strategy_options``) or None (train the model as it is).
        groups: groups to measure equivariance under each epoch (names or groups); default: the regularizers',
            or, without regularizers, one inferred from the data (:func:`default_group`); ``[]`` measures none.
        max_epochs, lr, weight_decay, seed, grad_clip: the usual; AdamW.
        scheduler: ``None``, ``"cosine"``, ``"step"`` or ``"plateau"``; ``scheduler_options`` go to the torch
            scheduler (e.g. ``{"step_size": 50, "gamma": 0.5}`` for ``"step"``, Xu et al.'s GIN schedule).
        early_stopping: a validation metric name (e.g. ``"rmse"``, ``"accuracy"``) and ``patience`` epochs;
            the best weights are restored at the end.
        run_dir: where ``metrics.csv``, ``history.json`` and checkpoints (``last.pt``, ``best.pt``) go.
        resume: continue from ``run_dir/last.pt`` when it exists.
        eq_samples: group samples per graph for the per-epoch equivariance metrics.
        stack: run transformed copies in the same forward as the batch
            (see :func:`~geoadapt.regularizers.stacked_forward`); ``None`` lets the model decide (its
            ``stack_copies`` attribute; no stacking through batch norm in training).
        device: ``"auto"`` (CUDA when available, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a
            ``torch.device``; the model and every batch move there (under torchrun each rank uses
            ``cuda:LOCAL_RANK``). CUDA without a GPU is an error, not a fall back to the CPU.
        precision: ``"32"``, ``"bf16"`` or ``"fp16"`` (CUDA only, with a gradient scaler): autocast for the
            training forward and loss; :meth:`evaluate` always measures in the model's own dtype.
    """

    def __init__(
        self,
        model: nn.Module,
        task: str = "regression",
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
        normalize_targets: bool = True,
        keep_normalization: bool = False,
        device: str | torch.device = "auto",
        precision: str = "32",
        energy_weight: float = 1.0,
        force_weight: float = 1.0,
        refit_shift: bool | None = None,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler: expected one of {SCHEDULERS}, got {scheduler!r}")
        self.task, self.seed, self.max_epochs, self.lr = task, seed, int(max_epochs), float(lr)
        self.weight_decay, self.grad_clip, self.scheduler_name = weight_decay, grad_clip, scheduler
        self.early_stopping, self.patience, self.eq_samples = early_stopping, patience, eq_samples
        self.stack = stack
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume, self.progress, self.normalize_targets = resume, progress, normalize_targets
        self.device = distributed.local_device(resolve_device(device))
        self.precision = resolve_precision(precision, self.device)
        check_materialized(model)  # weights on the meta device: an error here, never made up by a move
        if task == "potential":
            self.normalize_targets = False  # energies and forces are fitted in eV and eV/Å
            self.potential_loss = PotentialLoss(energy_weight, force_weight)
        self.refit_shift, self.shift_refit = refit_shift, None
        self._seed_everything(seed)
        self.spec = spec or getattr(model, "spec", None)
        if self.spec is None:
            raise ValueError("spec: expected model.spec or a spec= argument, got neither")
        # The output the regularizers and equivariance metrics see: forces for the potential task.
        self.output_spec = force_spec(self.spec) if task == "potential" else self.spec
        self._take_regularizers(regularizers, task)
        self.constraints: list[dict[str, Any]] = []
        self.warnings: list[str] = []
        self.infer_groups = groups is None and not self.components
        if groups is None:
            self.groups = [c.group for c in self.components]
        else:
            self.groups = [group_from_name(g) if isinstance(g, str) else g for g in groups]
        group = self.groups[0] if self.groups else None
        if isinstance(strategy, str):
            strategy = make_strategy(strategy, model, self.spec, group, **(strategy_options or {}))
        elif strategy_options:
            raise ValueError(f"strategy_options: expected them with a strategy name, got {strategy!r}")
        elif strategy is None:  # train the model as it is: no head policy, requires_grad untouched
            strategy = Finetune()
            strategy.attach(model, self.spec, group, record=False)
        elif strategy.model is None:
            strategy.apply(model, self.spec, group)
        self.strategy = strategy
        self.model = self.strategy.model.to(self.device)
        self.regularizers.to(self.device)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.precision == "fp16")
        self.base_model = model
        self.normalization: dict[str, list[float]] | None = None  # fitted on the training targets in fit()
        if keep_normalization:
            self.normalization = getattr(model, "normalization", None)
            if self.normalization is None and task == "regression" and normalize_targets:
                raise ValueError(
                    "keep_normalization: expected a model that carries a target standardization "
                    "(model.normalization), got None"
                )
        self.history: list[dict[str, float]] = []
        self.epoch = 0
        self.global_step = 0
        self.best: tuple[float, dict[str, Tensor]] | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: Any = None
        self.scheduler_options = dict(scheduler_options or {})

    # --- set-up --------------------------------------------------------------------------------
    def _take_regularizers(self, regularizers: Sequence[Regularizer], task: str) -> None:
        """Check and keep the regularizers; their components, the self-weighted ones and the constraints."""
        for i, reg in enumerate(regularizers):
            if not isinstance(reg, Regularizer) or not isinstance(reg, nn.Module):
                raise TypeError(
                    f"regularizers[{i}]: expected an nn.Module implementing geoadapt.regularizers.Regularizer, "
                    f"got {type(reg).__name__}"
                )
        self.regularizers = nn.ModuleList(regularizers)
        self.components: list[EquivarianceRegularizer] = [c for r in self.regularizers for c in r.components()]
        for component in self.components:
            component.set_task(task)
        # Self-setting weights apply to plain regularizers used on their own (mixed and constrained forms
        # set their strengths themselves).
        self.balanced = [c for r in self.regularizers for c in r.balanced()]
        self.constrained = [r for r in self.regularizers if isinstance(r, Constraint)]

    @staticmethod
    def _seed_everything(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    def _build_optimizer(self) -> None:
        groups = self.strategy.param_groups(self.lr)
        reg_params = [p for p in self.regularizers.parameters() if p.requires_grad]
        if reg_params:
            groups.append({"params": reg_params, "lr": self.lr})
        if not groups:
            raise ValueError("optimizer: expected trainable parameters, got none (everything is frozen)")
        self.optimizer = torch.optim.AdamW(groups, lr=self.lr, weight_decay=self.weight_decay)
        schedulers = {
            "cosine": (torch.optim.lr_scheduler.CosineAnnealingLR, {"T_max": max(self.max_epochs, 1)}),
            "step": (torch.optim.lr_scheduler.StepLR, {"step_size": max(self.max_epochs // 3, 1)}),
            "plateau": (torch.optim.lr_scheduler.ReduceLROnPlateau, {"patience": max(self.patience // 2, 1)}),
        }
        if self.scheduler_name is not None:
            make, defaults = schedulers[self.scheduler_name]
            try:
                self.scheduler = make(self.optimizer, **{**defaults, **self.scheduler_options})
            except TypeError as error:
                raise ValueError(
                    f"scheduler_options: expected keyword arguments of {make.__name__}, "
                    f"got {sorted(self.scheduler_options)} ({error})"
                ) from None

    # --- losses --------------------------------------------------------------------------------
    def task_loss(self, out: Tensor, y: Tensor) -> Tensor:
        """Task loss on model outputs (standardized space for regression)."""
        out = output_rows(out, self.spec)
        if self.task == "regression":
            target = normalize(y.to(out.dtype), self.normalization if self.normalize_targets else None)
            return F.mse_loss(out.reshape(target.shape), target)
        if out.shape[-1] == 1:
            return F.binary_cross_entropy_with_logits(out[:, 0], y.reshape(-1).to(out.dtype))
        return F.cross_entropy(out, y.reshape(-1).long())

    def predictor(self) -> nn.Module:
        """The model with predictions in target units (de-standardized for regression), in eval mode."""
        scaled = self.task == "regression" and self.normalize_targets
        return Denormalized(self.model, self.normalization if scaled else None).eval()

    # --- training ------------------------------------------------------------------------------
    def fit(
        self, train_loader: Iterable, val_loader: Iterable | None = None, epochs: int | None = None
    ) -> list[dict[str, float]]:
        """Train up to ``max_epochs`` (or until early stopping); returns the per-epoch history.

        ``epochs`` caps how many epochs this call runs (a later ``fit`` with ``resume=True`` goes on).
        """
        ddp = distributed.setup(self.device)
        if self.task == "regression" and self.normalize_targets and self.normalization is None:
            self.normalization = fit_normalization(train_loader, self.spec)  # whole training set, before sharding
        train_loader = distributed.shard_loader(train_loader) if ddp else train_loader
        self.base_model.normalization = self.normalization
        self._lazy_init(train_loader)
        if self.task == "potential" and self.epoch == 0 and self.shift_refit is None:
            self._refit_shift(train_loader)
        if self.optimizer is None:  # a later fit() call continues with the same optimizer state
            self._build_optimizer()
        if self.resume and self.run_dir is not None and (self.run_dir / "last.pt").is_file():
            self._load_state(self.run_dir / "last.pt")
            self.base_model.normalization = self.normalization  # the interrupted run's, restored with it
        forward_model = distributed.wrap(self.model, self.device) if ddp else self.model
        last = self.max_epochs if epochs is None else min(self.max_epochs, self.epoch + epochs)
        bar = tqdm(
            range(self.epoch, last),
            desc="epochs",
            disable=True if self.progress is False else None,
            initial=self.epoch,
            total=self.max_epochs,
        )
        for epoch in bar:
            row = self._train_epoch(forward_model, train_loader, epoch)
            if val_loader is not None:
                row.update({f"val_{k}": v for k, v in self.evaluate(val_loader).items()})
            self._measure_constraints(val_loader, row)
            for reg in self.regularizers:
                row.update(reg.log())
            self.history.append(row)
            self.epoch = epoch + 1
            stop = self._early_stopping(row)
            if self.scheduler is not None:
                metric = row.get(f"val_{self.early_stopping}", row["train_loss"])
                self.scheduler.step(metric) if self.scheduler_name == "plateau" else self.scheduler.step()
            if distributed.is_main():
                self._write_logs(row)
                self._save_state("last.pt")
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k in ("train_loss", "val_rmse", "val_accuracy")})
            if stop:
                log.info("early stopping at epoch %d", epoch)
                break
        if self.best is not None:
            self.model.load_state_dict(self.best[1])
            self._measure_constraints(val_loader, None)  # the restored weights are the ones reported
        self._final_checks()
        del forward_model  # the DDP wrapper holds the process group: release it before leaving the group
        distributed.teardown(ddp)
        return self.history

    def _refit_shift(self, loader: Iterable) -> None:
        from geoadapt.adapt.base import base_model

        refit = self.refit_shift if self.refit_shift is not None else has_energy_shift(base_model(self.model))
        if refit:
            self.shift_refit = refit_shift(self.model, loader)

    def output_view(self, model: nn.Module) -> nn.Module:
        """What regularizers and equivariance metrics see: ``model``, or its forces for the potential task."""
        return PotentialView(model, self.spec) if self.task == "potential" else model

    def _split(self, batch: Any) -> tuple[Any, Tensor | None]:
        # The potential task reads its labels (energy, force) from the graphs themselves.
        # Batches move to the Trainer's device here, once, for training, validation and constraints.
        return to_device((batch, None) if self.task == "potential" else split_batch(batch), self.device)

    def _lazy_init(self, loader: Iterable) -> None:
        """One forward on a batch so lazily created layers (``nn.LazyLinear``) exist before the optimizer."""
        if any(isinstance(p, nn.parameter.UninitializedParameter) for p in self.model.parameters()):
            inputs, _ = self._split(next(iter(loader)))
            with torch.no_grad():
                self.model(inputs)

    def _train_epoch(self, model: nn.Module, loader: Iterable, epoch: int) -> dict[str, float]:
        # Reseeding per epoch makes shuffling and group sampling a function of (seed, epoch): a resumed
        # run replays exactly the epochs an uninterrupted run would.
        torch.manual_seed(self.seed * 100_003 + epoch)
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        distributed.set_epoch(loader, epoch)
        self.model.train()
        view = self.output_view(model)
        sums = {"train_loss": 0.0, "train_task_loss": 0.0}
        pen_sums = [0.0] * len(self.components)
        steps = 0
        n_batches = len(loader) if hasattr(loader, "__len__") else None
        for step, batch in enumerate(loader):
            position = epoch + (step / n_batches if n_batches else 0.0)
            loss, task_loss, values = self._train_step(view, batch, generator, position, (epoch, step))
            sums["train_loss"] += float(loss.detach())
            sums["train_task_loss"] += float(task_loss.detach())
            for i, v in enumerate(values):
                pen_sums[i] += v
            steps += 1
        # Under DDP every rank saw a shard: average the epoch means so logs and dual updates agree.
        totals = distributed.sum_across([sums["train_loss"], sums["train_task_loss"], *pen_sums, float(steps)])
        sums["train_loss"], sums["train_task_loss"], pen_sums, steps = totals[0], totals[1], totals[2:-1], totals[-1]
        means = [s / max(steps, 1) for s in pen_sums]
        for reg, reg_means in zip(self.regularizers, self._per_regularizer(means)):
            reg.end_epoch(reg_means)
        row = {"epoch": int(epoch), **{k: v / max(steps, 1) for k, v in sums.items()}}
        row.update({f"train_penalty/{c.name}": m for c, m in zip(self.components, means)})
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        return row

    def _train_step(
        self, view: nn.Module, batch: Any, generator: torch.Generator, position: float, where: tuple[int, int]
    ) -> tuple[Tensor, Tensor, list[float]]:
        """One optimizer step on ``batch`` at ``position`` (epochs, fractional) of epoch and step ``where``: the
        loss, the task loss and the regularizers' penalties."""
        inputs, y = self._split(batch)
        if self.strategy.batch_transform is not None:
            inputs = self.strategy.batch_transform(inputs, generator)
            y = inputs.y if is_graph(inputs) else y  # equivariant graph targets move with the input
        if self.task == "potential":
            view.reset()
        balancing = [reg for reg in self.balanced if reg.balances_at(self.global_step)]
        with autocast(self.device, self.precision):
            out, penalties = stacked_forward(
                view,
                inputs,
                self.components,
                generator,
                self.stack,
                hook_model=self.model,
                step=self.global_step,
                spec=self.output_spec,
                whole=balancing,
            )
        if self.task == "potential":
            task_loss = self.potential_loss(view.energy, upcast(out), inputs)
        else:
            task_loss = self.task_loss(upcast(out), y)  # targets standardized in float32, not bfloat16
        known = self._balance(task_loss, penalties, balancing)
        terms = [reg.loss(p, position) for reg, p in zip(self.regularizers, self._per_regularizer(penalties))]
        extra = [self.strategy.extra_loss()] if self.strategy.extra_loss is not None else []
        loss = sum(terms + extra, task_loss)
        if not torch.isfinite(loss):
            last = self.run_dir / "last.pt" if self.run_dir and (self.run_dir / "last.pt").is_file() else None
            raise FloatingPointError(
                f"loss: expected a finite value, got {float(loss)} at epoch {where[0]}, "
                f"step {where[1]}; stopped" + (f"; last good checkpoint: {last}" if last else "")
            )
        self.optimizer.zero_grad(set_to_none=True)
        if known is None:
            self.scaler.scale(loss).backward()  # the scaler is a pass-through unless precision is fp16
        else:
            known.backward(self.regularizers, terms, extra, position)
        if self.grad_clip:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]], self.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        values = [float(p.detach()) for p in penalties]
        self._end_step(values)
        self.global_step += 1
        return loss, task_loss, values

    def _per_regularizer(self, values: list) -> list[list]:
        """``values`` (one per component) cut into one list per regularizer."""
        cut, offset = [], 0
        for reg in self.regularizers:
            count = len(reg.components())
            cut.append(values[offset : offset + count])
            offset += count
        return cut

    def _balance(
        self, task_loss: Tensor, penalties: list[Tensor], balancing: list[EquivarianceRegularizer]
    ) -> BalancingStep | None:
        """Set the self-tuning weights of ``balancing`` (the components whose weight re-sets this step) from gradient
        norms (:class:`~geoadapt.regularizers.BalancingStep`, norms averaged over processes under DDP). Returns the
        step where its gradients may be reused instead of back-propagating those terms again (one process, no
        gradient scaler); else ``None``."""
        due = [(reg, penalties[self.components.index(reg)]) for reg in balancing]
        params = [p for p in self.model.parameters() if p.requires_grad]
        known = BalancingStep.run(task_loss, due, params, distributed.mean_across)
        reusable = distributed.world_size() == 1 and not self.scaler.is_enabled()
        return known if reusable else None

    def _end_step(self, values: list[float]) -> None:
        """The regularizers' per-step hooks (dual ascent of constrained terms), with this step's penalties (averaged
        over processes under DDP)."""
        values = distributed.mean_across(values) if self.components else values
        for reg, reg_values in zip(self.regularizers, self._per_regularizer(values)):
            reg.end_step(reg_values, self.global_step)

    def _measure_constraints(self, val_loader: Iterable | None, row: dict[str, float] | None) -> None:
        """``E[R]`` of each constrained term on the validation data (the training mean without any)."""
        for reg in self.constrained:
            if val_loader is not None:
                inputs = [self._split(b)[0] for b in val_loader]
                generator = torch.Generator().manual_seed(self.seed + 1)
                value = mean_penalty(self.output_view(self.model), inputs, reg.term, self.output_spec, generator)
            elif row is not None:
                value = row[f"train_penalty/{reg.term.name}"]
            else:
                continue
            reg.record(value)

    def _final_checks(self) -> None:
        """Say plainly when a constraint is not met or a classifier predicts one class only."""
        self.constraints = [reg.report() for reg in self.constrained]
        for report in self.constraints:
            if not report["met"]:
                self._warn(constraint_verdict(report))
        last = self.history[-1] if self.history else {}
        share, labels = last.get("val_predicted_majority"), last.get("val_label_majority")
        if share is not None and share >= 0.95 and share > labels + 0.05:
            self._warn(
                f"classifier collapsed: {share:.0%} of validation predictions are one class "
                f"(the most common label is {labels:.0%} of the data)"
            )

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        log.warning(message)

    def _early_stopping(self, row: dict[str, float]) -> bool:
        if not self.early_stopping:
            return False
        key = f"val_{self.early_stopping}"
        if key not in row:
            raise ValueError(
                f"early_stopping: expected a validation metric among "
                f"{sorted(k[4:] for k in row if k.startswith('val_'))}, got {self.early_stopping!r}"
            )
        higher = self.early_stopping in ("accuracy", "precision", "recall", "f1", "roc_auc", "r2", "equivariance_score")
        value = row[key] if higher else -row[key]
        if self.best is None or value > self.best[0]:
            self.best = (value, {k: v.detach().clone() for k, v in self.model.state_dict().items()})
            self.best_epoch = len(self.history) - 1
            if distributed.is_main() and self.run_dir is not None:
                self._save_state("best.pt")
            return False
        return len(self.history) - 1 - self.best_epoch >= self.patience

    # --- evaluation ----------------------------------------------------------------------------
    def equivariance_scale(self) -> Tensor | None:
        """The block scales relative errors divide by: the targets' spread for regression, else the outputs'."""
        return target_scale(self.normalization, self.spec) if self.task == "regression" else None

    @torch.no_grad()
    def evaluate(self, loader: Iterable) -> dict[str, float]:
        """Task metrics and, per group, the equivariance of the predictions in target units.

        Keys: ``equivariance_error`` (mean relative error; for regression relative to the targets' spread,
        :func:`~geoadapt.train.targets.target_scale`), ``equivariance_score``, ``equivariance_abs/<block>``
        (mean absolute error of each output block, target units) and, for classifiers, ``consistency``; error
        and consistency come from the same transformed outputs. With one group the keys are plain; with
        several they are also suffixed by the group's name (``equivariance_error/SO3``). The potential task
        reports :func:`~geoadapt.train.potential.potential_metrics` and the equivariance of the forces.
        """
        with full_precision(self.device):  # measured in the model's dtype even inside an autocast region
            return self._evaluate(loader)

    def task_metrics(self, loader: Iterable) -> dict[str, float]:
        """The task metrics of :meth:`evaluate` alone (regression or classification), without measuring any group."""
        if self.task == "potential":
            raise ValueError("task_metrics: expected a regression or classification task, got 'potential'")
        with full_precision(self.device):
            metrics, _ = self._task_metrics(self.predictor(), loader)
        self.model.train()
        return metrics

    def _evaluate(self, loader: Iterable) -> dict[str, float]:
        if self.task == "potential":
            return self._evaluate_potential(loader)
        predictor = self.predictor()
        metrics, batches = self._task_metrics(predictor, loader)
        self._measure_groups(predictor, batches, metrics, self.equivariance_scale())
        return metrics

    def _task_metrics(self, predictor: nn.Module, loader: Iterable) -> tuple[dict[str, float], list]:
        """Task metrics of ``predictor`` on ``loader``, and the batches as the model takes them."""
        outs, ys, batches = [], [], []
        for batch in loader:
            inputs, y = self._split(batch)
            outs.append(output_rows(predictor(inputs), self.spec))
            ys.append(y)
            batches.append(inputs)
        out, y = torch.cat(outs), torch.cat(ys)
        if self.task == "regression":
            metrics = regression_metrics(out, y.reshape(out.shape[0], -1))
        else:
            metrics = classification_metrics(out, y)
            classes = predicted_class(out)
            metrics["predicted_majority"] = float(torch.bincount(classes).max()) / classes.numel()
            labels = y.reshape(-1).long()
            metrics["label_majority"] = float(torch.bincount(labels).max()) / labels.numel()
        return metrics, batches

    @torch.no_grad()
    def _evaluate_potential(self, loader: Iterable) -> dict[str, float]:
        self.model.eval()
        batches = [self._split(b)[0] for b in loader]
        metrics = potential_metrics(self.model, batches)
        self._measure_groups(self.output_view(self.model), batches, metrics, None)
        return metrics

    def _measure_groups(
        self, predictor: nn.Module, batches: list, metrics: dict[str, float], scale: Tensor | None
    ) -> None:
        """Add the equivariance metrics of ``predictor`` under each group to ``metrics``."""
        if self.infer_groups and not self.groups:
            self.groups = [default_group(self.spec, batches[0])]
        generator = torch.Generator().manual_seed(self.seed)
        classifier = self.task == "classification"
        for i, group in enumerate(self.groups):
            m = measure_equivariance(
                predictor, batches, group, self.output_spec, self.eq_samples, generator, scale, classifier=classifier
            )
            values = {"equivariance_error": m.error, "equivariance_score": m.score}
            values.update({f"equivariance_abs/{block}": v for block, v in m.absolute_by_block().items()})
            if classifier:
                values["consistency"] = m.consistency
            for k, v in values.items():
                if i == 0:
                    metrics[k] = v
                if len(self.groups) > 1:
                    metrics[f"{k}/{group!r}"] = v
        self.model.train()

    # --- logs and checkpoints ------------------------------------------------------------------
    def _write_logs(self, row: dict[str, float]) -> None:
        if self.run_dir is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        keys = sorted({k for r in self.history for k in r}, key=lambda k: (k != "epoch", k))
        tmp = self.run_dir / ".metrics.csv.tmp"
        with tmp.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=keys)
            writer.writeheader()
            for r in self.history:
                writer.writerow({k: r.get(k, math.nan) for k in keys})
        tmp.replace(self.run_dir / "metrics.csv")
        tmp = self.run_dir / ".history.json.tmp"
        tmp.write_text(json.dumps(self.history, indent=1))
        tmp.replace(self.run_dir / "history.json")

    def state(self) -> dict[str, Any]:
        """Everything needed to resume: weights, optimizer, scheduler, regularizers, RNG, epoch, history."""
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "regularizers": self.regularizers.state_dict(),
            "epoch": self.epoch,
            "global_step": self.global_step,
            "history": self.history,
            "normalization": self.normalization,
            "best": self.best,
            "best_epoch": getattr(self, "best_epoch", None),
            "scaler": self.scaler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "numpy": _numpy_rng_state(), "python": random.getstate()},
        }

    def _save_state(self, name: str) -> None:
        if self.run_dir is not None:
            atomic_save(self.state(), self.run_dir / name)

    def _load_state(self, path: Path) -> None:
        state = safe_load(path, "resume state", "start the run afresh (resume=false) if you did not write it")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.regularizers.load_state_dict(state["regularizers"])
        self.epoch, self.history, self.normalization = state["epoch"], state["history"], state["normalization"]
        self.global_step = state.get("global_step", 0)
        self.best, self.best_epoch = state["best"], state["best_epoch"]
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"]["torch"])
        name, keys, *rest = state["rng"]["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), *rest))
        random.setstate(state["rng"]["python"])
        log.info("resumed from %s at epoch %d", path, self.epoch)
