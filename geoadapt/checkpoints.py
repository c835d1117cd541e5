"""Checkpoints: one file with architecture + config, weights, Spec, the target scaler, provenance, and the
adaptation strategies applied to the model (so adapters and wrappers load exactly)."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geoadapt._version import __version__
from geoadapt.adapt.base import attach_steps, group_record
from geoadapt.devices import resolve_device
from geoadapt.dtypes import default_dtype
from geoadapt.groups import Group
from geoadapt.models import custom
from geoadapt.models.predictor import Predictor, base_model, network_of, scaler_of
from geoadapt.models.registry import build
from geoadapt.models.scalers import Standardize, TargetScaler, scaler_from_record, scaler_record
from geoadapt.serialization import atomic_save, safe_load
from geoadapt.spec import Spec

FORMAT = "geoadapt-checkpoint"
# 4: the target scaler as {"kind", "state"} (3 and earlier: a standardization under "normalization");
# 3: groups stored as records, read with weights_only; 2: adapted models (strategy steps, trainable names, dtype).
# 1 to 3 still load when they hold only tensors and plain data (see convert_legacy for those that do not).
FORMAT_VERSION = 4
CONVERT_HINT = (
    "if you trust the file, convert it once with "
    "`geoadapt convert-checkpoint source={path} out=<new.pt> trust_code=true` "
    "(or geoadapt.checkpoints.convert_legacy)"
)


def save(
    model: nn.Module,
    path: str | os.PathLike,
    target_scaler: TargetScaler | None = None,
    dataset: str | None = None,
    metrics: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (built with :func:`build` or declared with :func:`~geoadapt.models.wrap`, possibly
    adapted by strategies) to ``path`` atomically.

    An adapted model (LoRA, a frame-averaged or canonicalized wrapper, ...) is saved whole: the
    checkpoint holds the base architecture and config, the recorded strategy steps and the state dict
    of the adapted model, so :func:`load` rebuilds the same structure before loading the weights.
    A :class:`~geoadapt.models.predictor.Predictor` is saved as its network plus its scaler.

    Args:
        target_scaler: the scaler the network was trained with (e.g. a fitted
            :class:`~geoadapt.models.scalers.Standardize`); defaults to the one ``model`` carries
            (:func:`~geoadapt.models.predictor.scaler_of`: a predictor's, or the ``target_scaler`` the Trainer
            records on the network it trains).
        dataset, metrics: where and how well the model was (pre)trained.
        extra: anything else JSON-like (e.g. an optimizer state for resuming).
    """

    scaler = target_scaler if target_scaler is not None else scaler_of(model)
    model = network_of(model)
    base = base_model(model)
    if not hasattr(base, "arch") or not hasattr(base, "config"):
        raise ValueError(
            f"model: expected a backbone made by geoadapt.models.build or declared with geoadapt.models.wrap "
            f"(with .arch and .config), got {type(base).__name__}"
        )
    steps = list(getattr(model, "adaptations", []))
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
        "target_scaler": scaler_record(scaler),
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

    **Its forward answers in target units.** When the checkpoint carries a target scaler (a regression network
    trained on standardized targets), the result is a :class:`~geoadapt.models.predictor.Predictor`: the network
    followed by the scaler's inverse, with the network as ``.network`` and its ``.spec``, ``.arch``,
    ``.adaptations``, ``.checkpoint``, ``.symmetry``; the Trainer given it trains the network on scaled targets.
    Otherwise (classifiers, potentials, networks trained on raw targets) it is the network itself. Checkpoints
    of format 3 and earlier with a ``normalization`` load the same way.

    Reading runs no code from the file. A model declared with :func:`~geoadapt.models.wrap` is rebuilt by
    ``builder(**init)`` when given; else its class (named in the checkpoint) is imported and called with the saved
    ``init`` keywords only when it is a class registered in this process (:func:`~geoadapt.models.register_class`)
    or you pass ``trust_code=True`` for a file you trust; otherwise one line names the class it asks for.
    The weights are read onto the CPU whatever device wrote them, and the model is moved to ``device``
    (``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"auto"``; see :func:`geoadapt.devices.resolve_device`).

    Adapted models come back adapted: the base is built (in the saved dtype), the recorded strategy
    steps re-attach their adapters and wrappers, then the full state dict is loaded and the trainable
    parameters are those that were trainable when saved. The network carries ``.arch``, ``.spec``,
    ``.checkpoint`` (dataset, metrics, versions, strategy) and ``.target_scaler`` (``None`` without one).
    """
    target = resolve_device(device)
    payload = read(path)
    if arch is not None and payload["arch"] != arch:
        raise ValueError(f"checkpoint {path}: expected architecture {arch!r}, got {payload['arch']!r}")
    model = _rebuild(payload, path, builder, trust_code)
    if "trainable" in payload:
        trainable = set(payload["trainable"])
        for name, p in model.named_parameters():
            p.requires_grad_(name in trainable)
    model.to(target)
    model.arch = payload["arch"]
    model.checkpoint = {
        k: payload.get(k) for k in ("dataset", "metrics", "library_version", "extra", "strategy", "strategy_options")
    }
    model.target_scaler = _stored_scaler(payload)
    return Predictor(model, model.target_scaler) if model.target_scaler is not None else model


def _rebuild(
    payload: dict[str, Any], path: str | os.PathLike, builder: Callable[..., nn.Module] | None, trust_code: bool
) -> nn.Module:
    """The saved architecture (in its dtype) with its strategy steps re-attached and the saved weights loaded."""

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
    return model


def _stored_scaler(payload: dict[str, Any]) -> TargetScaler | None:
    """The checkpoint's target scaler: ``target_scaler`` (format 4), or the ``normalization`` of earlier formats."""
    if payload.get("target_scaler") is not None:
        return scaler_from_record(payload["target_scaler"])
    if payload.get("normalization") is not None:
        return Standardize.from_state(payload["normalization"])
    return None
