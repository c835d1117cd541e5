"""Checkpoints: one file with architecture + config, weights, Spec, target normalization, provenance,
and the adaptation strategies applied to the model (so adapters and wrappers load exactly)."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geoadapt.devices import resolve_device
from geoadapt.dtypes import default_dtype
from geoadapt.groups import Group
from geoadapt.models import custom
from geoadapt.models.registry import build
from geoadapt.serialization import atomic_save, safe_load
from geoadapt.spec import Spec

FORMAT = "geoadapt-checkpoint"
# 3: groups stored as records, read with weights_only; 2: adapted models (strategy steps, trainable names, dtype).
# 1 and 2 still load when they hold only tensors and plain data (see convert_legacy for those that do not).
FORMAT_VERSION = 3
CONVERT_HINT = (
    "if you trust the file, convert it once with "
    "`geoadapt convert-checkpoint source={path} out=<new.pt> trust_code=true` "
    "(or geoadapt.models.checkpoint.convert_legacy)"
)


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
    on a machine without one), read without running any code it may hold (``torch.load(weights_only=True)``).

    ``FileNotFoundError`` / ``ValueError`` with the path when unusable; a file holding Python objects beyond tensors
    and plain data is refused with :class:`~geoadapt.serialization.UnsafeFileError` (one line).
    """
    payload = safe_load(path, "checkpoint", CONVERT_HINT.format(path=path))
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


def convert_legacy(source: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Rewrite a checkpoint of an earlier format that pickled Python objects (e.g. a group) as plain data.

    This UNPICKLES ``source`` (``weights_only=False``): it runs whatever code the file holds. Call it only on a
    file you trust (you wrote it, or you know who did); the result at ``target`` loads safely everywhere.
    """
    from geoadapt.adapt.base import group_record

    payload = torch.load(Path(source), map_location="cpu", weights_only=False)  # trusted by the caller, on purpose
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"checkpoint {source}: expected format {FORMAT!r}, got {type(payload).__name__}")
    for step in payload.get("adaptations", []):
        if isinstance(step.get("group"), Group):
            step["group"] = group_record(step["group"])
    payload["format_version"] = FORMAT_VERSION
    atomic_save(payload, target)
    return Path(target)


def load(
    path: str | os.PathLike,
    arch: str | None = None,
    builder: Callable[..., nn.Module] | None = None,
    device: str | torch.device = "cpu",
    trust_code: bool = False,
) -> nn.Module:
    """Rebuild the model saved at ``path``; ``arch`` (optional) must match the saved (base) architecture.

    Reading runs no code from the file. A model declared with :func:`~geoadapt.models.wrap` is rebuilt by
    ``builder(**init)`` when given; else its class (named in the checkpoint) is imported and called with the saved
    ``init`` keywords only when it is a class registered in this process (:func:`~geoadapt.models.register_class`)
    or you pass ``trust_code=True`` for a file you trust; otherwise one line names the class it asks for.
    The weights are read onto the CPU whatever device wrote them, and the model is moved to ``device``
    (``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``; see :func:`geoadapt.devices.resolve_device`).

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
            model = custom.rebuild(payload["config"], builder, trust_code)
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
