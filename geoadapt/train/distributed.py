"""Distributed data parallel under ``torchrun`` (gloo on CPU): set-up, sharded loaders, model wrapping."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DistributedSampler, RandomSampler


def world_size() -> int:
    """Processes in the job (``WORLD_SIZE`` set by torchrun; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup() -> bool:
    """Join the process group when launched by torchrun with several processes; True when distributed."""
    if world_size() <= 1 or not dist.is_available():
        return False
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return True


def teardown(active: bool) -> None:
    """Leave the process group (only if this module joined it).

    Call it after the DDP wrapper is gone. Gloo's destructor joins its worker threads while holding the
    GIL, and a worker that is still freeing a finished collective needs the GIL: collecting garbage and
    sleeping briefly (which releases the GIL) first lets the workers finish, so the join cannot deadlock.
    """
    if active and dist.is_initialized():
        gc.collect()
        time.sleep(0.2)
        dist.destroy_process_group()


def is_main() -> bool:
    """True on rank 0 (and when not distributed): the process that writes logs and checkpoints."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def sum_across(values: list[float]) -> list[float]:
    """Sum ``values`` over all ranks (identity when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64)
    dist.all_reduce(tensor)
    return tensor.tolist()


def mean_across(values: list[float]) -> list[float]:
    """Average ``values`` over all ranks (identity when not distributed)."""
    return [v / world_size() for v in sum_across(values)]


def shard_loader(loader: Iterable) -> Iterable:
    """The same loader over this rank's shard of the dataset (``DistributedSampler``, same batch size)."""
    dataset = loader.dataset
    shuffle = isinstance(getattr(loader, "sampler", None), RandomSampler)
    sampler = DistributedSampler(dataset, shuffle=shuffle, drop_last=False)
    return loader.__class__(dataset, batch_size=loader.batch_size, sampler=sampler)


def set_epoch(loader: Iterable, epoch: int) -> None:
    """Reshuffle a distributed sampler per epoch."""
    sampler = getattr(loader, "sampler", None)
    if isinstance(sampler, DistributedSampler):
        sampler.set_epoch(epoch)


def wrap(model: nn.Module) -> nn.Module:
    """``DistributedDataParallel`` around ``model`` (CPU, gloo)."""
    return nn.parallel.DistributedDataParallel(model)
