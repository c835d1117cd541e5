"""Devices and precision: which device a run uses, where data lives, and mixed-precision contexts.

A device is named ``"auto"`` (CUDA when torch sees one, else the CPU), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
given as a :class:`torch.device`. Asking for CUDA where there is none is an error, never a quiet fall back to
the CPU. Group elements are drawn with the (CPU) generators the caller passes, then moved to the data's
device, so a seed gives the same elements on every device.
"""

from __future__ import annotations

import copy
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import torch
from torch import Tensor, nn

PRECISIONS = ("32", "bf16", "fp16")
_AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device | None = "auto", field: str = "device") -> torch.device:
    """The :class:`torch.device` named by ``device`` (``None`` is ``"auto"``); ``ValueError`` naming ``field``."""
    if isinstance(device, torch.device):
        name = str(device)
    elif device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    elif isinstance(device, str):
        name = device
    else:
        raise ValueError(f"{field}: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {type(device).__name__} {device!r}")
    kind, _, index = name.partition(":")
    if kind not in ("cpu", "cuda") or (index and not index.isdigit()) or (kind == "cpu" and index):
        raise ValueError(f"{field}: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    resolved = torch.device(name)
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{field}: expected a CUDA device torch can use, got {device!r} but torch.cuda.is_available() "
                f"is False (torch {torch.__version__}, built for CUDA {torch.version.cuda}); use device='cpu'"
            )
        count = torch.cuda.device_count()
        if resolved.index is not None and resolved.index >= count:
            raise ValueError(f"{field}: expected cuda:0 to cuda:{count - 1} ({count} GPUs), got {device!r}")
    return resolved


def resolve_precision(precision: str | int | None, device: torch.device, field: str = "precision") -> str:
    """``"32"``, ``"bf16"`` or ``"fp16"`` (``None``/``32`` mean ``"32"``); fp16 needs CUDA."""
    name = "32" if precision is None else str(precision)
    if name not in PRECISIONS:
        raise ValueError(f"{field}: expected one of {list(PRECISIONS)}, got {precision!r}")
    if name == "fp16" and device.type != "cuda":
        raise ValueError(f"{field}: expected 'fp16' only on a CUDA device (use 'bf16' on {device}), got {precision!r}")
    return name


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """``torch.autocast`` for ``precision`` on ``device`` (a no-op context for ``"32"``)."""
    if precision == "32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=_AUTOCAST_DTYPES[precision])


def full_precision(device: torch.device) -> AbstractContextManager:
    """Autocast switched off: what runs inside keeps its float32/float64 dtypes."""
    return torch.autocast(device_type=device.type, enabled=False)


def upcast(tensor: Tensor) -> Tensor:
    """``tensor`` in float32 when autocast left it in bfloat16 or float16; unchanged otherwise."""
    return tensor.float() if tensor.dtype in (torch.bfloat16, torch.float16) else tensor


def data_device(data: Any) -> torch.device:
    """The device of a tensor, a PyG graph (its first tensor) or a tuple of them; the CPU when none holds one."""
    if isinstance(data, Tensor):
        return data.device
    if isinstance(data, (tuple, list)):
        for item in data:
            if isinstance(item, Tensor) or hasattr(item, "stores"):
                return data_device(item)
        return torch.device("cpu")
    for store in getattr(data, "stores", ()):
        for value in store.values():
            if isinstance(value, Tensor):
                return value.device
    return torch.device("cpu")


def to_device(data: Any, device: torch.device) -> Any:
    """``data`` (tensor, PyG graph, tuple or list of them, group element) on ``device``; others unchanged.

    Never in place: a graph already on ``device`` comes back as a shallow copy sharing its tensors.
    """
    if isinstance(data, Tensor):
        return data.to(device)
    if isinstance(data, tuple):
        return tuple(to_device(item, device) for item in data)
    if isinstance(data, list):
        return [to_device(item, device) for item in data]
    if hasattr(data, "stores") and hasattr(data, "to"):
        # PyG's Data.to works in place: move a shallow copy so the caller's graph stays where it was.
        return copy.copy(data).to(device)
    return data


def module_device(model: nn.Module) -> torch.device | None:
    """The one device of ``model``'s parameters and buffers (``None`` when it has none).

    ``ValueError`` when they are spread over several devices or hold no data (the ``meta`` device).
    """
    devices = {t.device for t in [*model.parameters(), *model.buffers()]}
    if not devices:
        return None
    if len(devices) > 1:
        raise ValueError(f"model: expected parameters and buffers on one device, got {sorted(str(d) for d in devices)}")
    device = devices.pop()
    if device.type == "meta":
        raise ValueError(
            f"model: expected parameters with data, got {type(model).__name__} on the meta device "
            "(materialize it with to_empty(device=...) and load its weights first)"
        )
    return device


def check_materialized(model: nn.Module) -> None:
    """``ValueError`` when a parameter or buffer of ``model`` is on the meta device (shapes without data):
    moving it would make up weights, so it is never moved."""
    empty = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.device.type == "meta"]
    if empty:
        raise ValueError(
            f"model: expected parameters with data, got {len(empty)} on the meta device (e.g. {empty[0]!r}); "
            "materialize it with to_empty(device=...) and load its weights first"
        )


def check_same_device(model: nn.Module, data: Any, what: str = "data") -> None:
    """``ValueError`` when ``data`` and ``model`` are on different devices (or either on ``meta``)."""
    device = module_device(model)
    where = data_device(data)
    if where.type == "meta":
        raise ValueError(f"{what}: expected tensors with data, got tensors on the meta device")
    if device is not None and device != where:
        raise ValueError(
            f"{what}: expected it on the model's device {device}, got {where} (move both with .to(device), "
            "or pass device= to the Trainer)"
        )
