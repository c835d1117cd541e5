"""Checkpoints: one file with architecture + config, weights, Spec, target normalization, provenance,
and the adaptation strategies applied to the model (so adapters and wrappers load exactly)."""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geoadapt.data.cache import atomic_save
from geoadapt.devices import resolve_device
from geoadapt.dtypes import default_dtype
from geoadapt.models import custom
from geoadapt.models.registry import build
from geoadapt.spec import Spec

FORMAT = "geoadapt-checkpoint"
FORMAT_VERSION = 2  # 2: adapted models (strategy steps, trainable names, dtype); 1 still loads


def save(
    model: nn.Module,
    path: str | os.PathLike,
    normalization: dict[str, list[float]] | None = None,
    dataset: str | None = None,
    metrics: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (built with :func:`build` or declared with :func:`~geoadapt.models.wrap`, possibly
    adapted by strategies) to ``path`` atomically.

    An adapted model (LoRA, a frame-averaged or canonicalized wrapper, ...) is saved whole: the
    checkpoint holds the base architecture and config, the recorded strategy steps and the state dict
    of the adapted model, so :func:`load` rebuilds the same structure before loading the weights.

    Args:
        normalization: target standardization, e.g. ``{"mean": [...], "std": [...]}``; defaults to
            ``model.normalization`` (or the base model's) when the model carries one.
        dataset, metrics: where and how well the model was (pre)trained.
        extra: anything else JSON-like (e.g. an optimizer state for resuming).
    """
    from geoadapt import __version__
    from geoadapt.adapt.base import base_model

    base = base_model(model)
    if not hasattr(base, "arch") or not hasattr(base, "config"):
        raise ValueError(
            f"model: expected a backbone made by geoadapt.models.build or declared with geoadapt.models.wrap "
            f"(with .arch and .config), got {type(base).__name__}"
        )
    steps = list(getattr(model, "adaptations", []))
    if normalization is None:
        normalization = getattr(model, "normalization", None) or getattr(base, "normalization", None)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "arch": base.arch,
        "config": dict(base.config),
        "state_dict": model.state_dict(),
        "spec": base.spec.to_dict(),
        "adaptations": steps,
        "strategy": steps[-1]["strategy"] if steps else None,
        "strategy_options": steps[-1]["options"] if steps else None,
        "trainable": [n for n, p in model.named_parameters() if p.requires_grad],
        "dtype": _float_dtype(model),
        "normalization": normalization,
        "dataset": dataset,
        "metrics": dict(metrics or {}),
        "extra": dict(extra or {}),
    }
    atomic_save(payload, path)
    return Path(path)


def _float_dtype(model: nn.Module) -> str | None:
    """``"float64"`` etc. when every floating parameter and buffer shares one dtype, else None."""
    dtypes = {t.dtype for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()}
    return str(dtypes.pop()).removeprefix("torch.") if len(dtypes) == 1 else None


def read(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dict, its tensors on the CPU (``map_location``: a checkpoint written on a GPU reads
    on a machine without one); ``FileNotFoundError`` / ``ValueError`` with the path when unusable."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path.name!r} not found in {path.parent.resolve()}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, zipfile.BadZipFile, RuntimeError, EOFError, OSError) as err:
        raise ValueError(
            f"checkpoint {path}: expected a geoadapt checkpoint file, got unreadable data ({err})"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(
            f"checkpoint {path}: expected format {FORMAT!r}, got "
            f"{payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r}"
        )
    if payload.get("format_version", 1) > FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {path}: expected format version <= {FORMAT_VERSION}, got {payload['format_version']} "
            f"(written by geoadapt {payload.get('library_version')}; upgrade to read it)"
        )
    return payload


def load(
    path: str | os.PathLike,
    arch: str | None = None,
    builder: Callable[..., nn.Module] | None = None,
    device: str | torch.device = "cpu",
) -> nn.Module:
    """Rebuild the model saved at ``path``; ``arch`` (optional) must match the saved (base) architecture.

    A model declared with :func:`~geoadapt.models.wrap` is rebuilt by ``builder(**init)`` when given,
    else by importing its class and calling it with the saved ``init`` keywords. The weights are read onto the
    CPU whatever device wrote them, and the model is moved to ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:N"``
    or ``"auto"``; see :func:`geoadapt.devices.resolve_device`).

    Adapted models come back adapted: the base is built (in the saved dtype), the recorded strategy
    steps re-attach their adapters and wrappers, then the full state dict is loaded and the trainable
    parameters are those that were trainable when saved. The returned model carries ``.arch``,
    ``.spec``, ``.checkpoint`` (dataset, metrics, versions, strategy) and ``.normalization``.
    """
    from geoadapt.adapt.base import attach_steps

    target = resolve_device(device)
    payload = read(path)
    if arch is not None and payload["arch"] != arch:
        raise ValueError(f"checkpoint {path}: expected architecture {arch!r}, got {payload['arch']!r}")
    dtype = payload.get("dtype")
    with default_dtype(getattr(torch, dtype)) if dtype else nullcontext():
        if payload["arch"] == custom.ARCH:
            model = custom.rebuild(payload["config"], builder)
        else:
            model = build(payload["arch"], **payload["config"])
        model.spec = Spec.from_dict(payload["spec"])
        model = attach_steps(model, payload.get("adaptations", []))
        try:
            model.load_state_dict(payload["state_dict"])
        except RuntimeError as err:
            raise ValueError(
                f"checkpoint {path}: weights do not fit architecture {payload['arch']!r} "
                f"with strategies {[s['strategy'] for s in payload.get('adaptations', [])]} ({err})"
            ) from err
    if "trainable" in payload:
        trainable = set(payload["trainable"])
        for name, p in model.named_parameters():
            p.requires_grad_(name in trainable)
    model.to(target)
    model.arch = payload["arch"]
    model.normalization = payload.get("normalization")
    model.checkpoint = {
        k: payload.get(k) for k in ("dataset", "metrics", "library_version", "extra", "strategy", "strategy_options")
    }
    return model
