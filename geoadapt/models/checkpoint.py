"""Checkpoints: one file with architecture + config, weights, Spec, target normalization, provenance."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from geoadapt.data.cache import atomic_save
from geoadapt.models.registry import build
from geoadapt.spec import Spec

FORMAT = "geoadapt-checkpoint"
FORMAT_VERSION = 1


def save(
    model: nn.Module,
    path: str | os.PathLike,
    normalization: dict[str, list[float]] | None = None,
    dataset: str | None = None,
    metrics: dict[str, float] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (built with :func:`build`) to ``path`` atomically.

    Args:
        normalization: target standardization, e.g. ``{"mean": [...], "std": [...]}``; defaults to
            ``model.normalization`` when the model carries one.
        dataset, metrics: where and how well the model was (pre)trained.
        extra: anything else JSON-like (e.g. an optimizer state for resuming).
    """
    from geoadapt import __version__

    if not hasattr(model, "arch") or not hasattr(model, "config"):
        raise ValueError(
            f"model: expected a backbone made by geoadapt.models.build (with .arch and .config), "
            f"got {type(model).__name__}"
        )
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "arch": model.arch,
        "config": dict(model.config),
        "state_dict": model.state_dict(),
        "spec": model.spec.to_dict(),
        "normalization": normalization if normalization is not None else getattr(model, "normalization", None),
        "dataset": dataset,
        "metrics": dict(metrics or {}),
        "extra": dict(extra or {}),
    }
    atomic_save(payload, path)
    return Path(path)


def read(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint dict; ``FileNotFoundError`` / ``ValueError`` with the path when unusable."""
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
    return payload


def load(path: str | os.PathLike, arch: str | None = None) -> nn.Module:
    """Rebuild the model saved at ``path``; ``arch`` (optional) must match the saved architecture.

    The returned model carries ``.checkpoint`` (dataset, metrics, versions) and ``.normalization``.
    """
    payload = read(path)
    if arch is not None and payload["arch"] != arch:
        raise ValueError(f"checkpoint {path}: expected architecture {arch!r}, got {payload['arch']!r}")
    model = build(payload["arch"], **payload["config"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"checkpoint {path}: weights do not fit architecture {payload['arch']!r} ({err})") from err
    model.spec = Spec.from_dict(payload["spec"])
    model.normalization = payload.get("normalization")
    model.checkpoint = {k: payload.get(k) for k in ("dataset", "metrics", "library_version", "extra")}
    return model
