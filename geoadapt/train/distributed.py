"""Distributed data parallel under ``torchrun`` (NCCL on GPUs, gloo on CPU): set-up, sharded loaders, wrapping.

Each process runs on its own device: ``cuda:LOCAL_RANK`` when the run is on CUDA, the CPU otherwise.
"""

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


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK`` set by torchrun; 0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def local_device(device: torch.device) -> torch.device:
    """The device of this process: ``cuda:LOCAL_RANK`` for a CUDA run of several processes (whatever GPU
    index ``device`` names: each rank needs its own), else ``device``.

    ``ValueError`` when a CUDA run has more processes on this machine than GPUs (two ranks on one GPU
    would each hold a copy of the model and fight over its memory).
    """
    if device.type != "cuda" or world_size() <= 1:
        return device
    count = torch.cuda.device_count()
    if local_rank() >= count:
        raise ValueError(f"LOCAL_RANK: expected a rank below the {count} GPUs of this machine, got {local_rank()}")
    return torch.device("cuda", local_rank())


def backend(device: torch.device) -> str:
    """``"nccl"`` for CUDA devices, ``"gloo"`` for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def setup(device: torch.device | None = None) -> bool:
    """Join the process group when launched by torchrun with several processes; True when distributed.

    The backend follows ``device`` (see :func:`backend`; CPU when None); on CUDA the process's current
    device becomes ``device``.
    """
    if world_size() <= 1 or not dist.is_available():
        return False
    device = device or torch.device("cpu")
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend(device))
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
    # NCCL reduces GPU tensors only; gloo host tensors.
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
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


def wrap(model: nn.Module, device: torch.device | None = None) -> nn.Module:
    """``DistributedDataParallel`` around ``model`` (already on ``device``: one GPU per process, or the CPU)."""
    if device is not None and device.type == "cuda":
        return nn.parallel.DistributedDataParallel(model, device_ids=[device], output_device=device)
    return nn.parallel.DistributedDataParallel(model)
