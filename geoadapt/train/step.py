"""One training epoch and one optimizer step: task loss from the task, penalties from the regularizers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from geoadapt.devices import autocast, to_device, upcast
from geoadapt.regularizers import BalancingStep, EquivarianceRegularizer, stacked_forward
from geoadapt.structure import is_graph
from geoadapt.train import distributed

if TYPE_CHECKING:
    from geoadapt.train.trainer import Trainer


def train_epoch(trainer: Trainer, model: nn.Module, loader: Iterable, epoch: int) -> dict[str, float]:
    """Train one epoch of ``loader`` (``model``: the trainer's model or its DDP wrapper); the epoch's history row."""
    # Reseeding per epoch makes shuffling and group sampling a function of (seed, epoch): a resumed
    # run replays exactly the epochs an uninterrupted run would.
    seed = trainer.options.seed
    torch.manual_seed(seed * 100_003 + epoch)
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    distributed.set_epoch(loader, epoch)
    trainer.model.train()
    view = trainer.task.view(model, training=True)
    sums = {"train_loss": 0.0, "train_task_loss": 0.0}
    pen_sums = [0.0] * len(trainer.components)
    steps = 0
    n_batches = len(loader) if hasattr(loader, "__len__") else None
    for step, batch in enumerate(loader):
        position = epoch + (step / n_batches if n_batches else 0.0)
        loss, task_loss, values = train_step(trainer, view, batch, generator, position, (epoch, step))
        sums["train_loss"] += float(loss.detach())
        sums["train_task_loss"] += float(task_loss.detach())
        for i, v in enumerate(values):
            pen_sums[i] += v
        steps += 1
    # Under DDP every rank saw a shard: average the epoch means so logs and dual updates agree.
    totals = distributed.sum_across([sums["train_loss"], sums["train_task_loss"], *pen_sums, float(steps)])
    sums["train_loss"], sums["train_task_loss"], pen_sums, steps = totals[0], totals[1], totals[2:-1], totals[-1]
    means = [s / max(steps, 1) for s in pen_sums]
    for reg, reg_means in zip(trainer.regularizers, per_regularizer(trainer, means)):
        reg.end_epoch(reg_means)
    row = {"epoch": int(epoch), **{k: v / max(steps, 1) for k, v in sums.items()}}
    row.update({f"train_penalty/{c.name}": m for c, m in zip(trainer.components, means)})
    row["lr"] = trainer.optimizer.param_groups[0]["lr"]
    return row


def _forward(trainer: Trainer, view: nn.Module, batch: Any, generator: torch.Generator) -> tuple:
    """Inputs, targets, outputs and penalties of one step, and the components balancing their weight on it."""
    inputs, targets = to_device(trainer.task.split(batch), trainer.device)
    if trainer.strategy.batch_transform is not None:
        inputs = trainer.strategy.batch_transform(inputs, generator)
        if is_graph(inputs):  # equivariant graph targets move with the input
            targets = trainer.task.split(inputs)[1]
    balancing = [reg for reg in trainer.balanced if reg.balances_at(trainer.global_step)]
    with autocast(trainer.device, trainer.precision):
        out, penalties = stacked_forward(
            view,
            inputs,
            trainer.components,
            generator,
            trainer.options.stack,
            hook_model=trainer.model,
            step=trainer.global_step,
            spec=trainer.task.output_spec,
            whole=balancing,
        )
    return inputs, targets, out, penalties, balancing


def train_step(
    trainer: Trainer, view: nn.Module, batch: Any, generator: torch.Generator, position: float, where: tuple[int, int]
) -> tuple[Tensor, Tensor, list[float]]:
    """One optimizer step on ``batch`` at ``position`` (epochs, fractional) of epoch and step ``where``: the
    loss, the task loss and the regularizers' penalties."""
    inputs, targets, out, penalties, balancing = _forward(trainer, view, batch, generator)
    task_loss = trainer.task.loss(view, upcast(out), targets, inputs)  # targets scaled in float32, not bfloat16
    known = balance(trainer, task_loss, penalties, balancing)
    terms = [reg.loss(p, position) for reg, p in zip(trainer.regularizers, per_regularizer(trainer, penalties))]
    extra = [trainer.strategy.extra_loss()] if trainer.strategy.extra_loss is not None else []
    loss = sum(terms + extra, task_loss)
    if not torch.isfinite(loss):
        run_dir = trainer.run_dir
        last = run_dir / "last.pt" if run_dir and (run_dir / "last.pt").is_file() else None
        raise FloatingPointError(
            f"loss: expected a finite value, got {float(loss)} at epoch {where[0]}, "
            f"step {where[1]}; stopped" + (f"; last good checkpoint: {last}" if last else "")
        )
    optimizer, grad_scaler = trainer.optimizer, trainer.grad_scaler
    optimizer.zero_grad(set_to_none=True)
    if known is None:
        grad_scaler.scale(loss).backward()  # the scaler is a pass-through unless precision is fp16
    else:
        known.backward(trainer.regularizers, terms, extra, position)
    if trainer.options.grad_clip:
        grad_scaler.unscale_(optimizer)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        nn.utils.clip_grad_norm_(params, trainer.options.grad_clip)
    grad_scaler.step(optimizer)
    grad_scaler.update()
    values = [float(p.detach()) for p in penalties]
    end_step(trainer, values)
    trainer.global_step += 1
    return loss, task_loss, values


def per_regularizer(trainer: Trainer, values: Sequence) -> list[list]:
    """``values`` (one per component) cut into one list per regularizer."""
    cut, offset = [], 0
    for reg in trainer.regularizers:
        count = len(reg.components())
        cut.append(list(values[offset : offset + count]))
        offset += count
    return cut


def balance(
    trainer: Trainer, task_loss: Tensor, penalties: list[Tensor], balancing: list[EquivarianceRegularizer]
) -> BalancingStep | None:
    """Set the self-tuning weights of ``balancing`` (the components whose weight re-sets this step) from gradient
    norms (:class:`~geoadapt.regularizers.BalancingStep`, norms averaged over processes under DDP). Returns the
    step where its gradients may be reused instead of back-propagating those terms again (one process, no
    gradient scaler); else ``None``."""
    due = [(reg, penalties[trainer.components.index(reg)]) for reg in balancing]
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    known = BalancingStep.run(task_loss, due, params, distributed.mean_across)
    reusable = distributed.world_size() == 1 and not trainer.grad_scaler.is_enabled()
    return known if reusable else None


def end_step(trainer: Trainer, values: list[float]) -> None:
    """The regularizers' per-step hooks (dual ascent of constrained terms), with this step's penalties (averaged
    over processes under DDP)."""
    values = distributed.mean_across(values) if trainer.components else values
    for reg, reg_values in zip(trainer.regularizers, per_regularizer(trainer, values)):
        reg.end_step(reg_values, trainer.global_step)
