"""Named backbones, so a config can say ``model: egnn``."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch

_REGISTRY: dict[str, type[torch.nn.Module]] = {}


def register(name: str) -> Callable[[type[torch.nn.Module]], type[torch.nn.Module]]:
    """Class decorator: make a backbone buildable as ``build(name, **config)``."""

    def wrap(cls: type[torch.nn.Module]) -> type[torch.nn.Module]:
        _REGISTRY[name] = cls
        cls.arch = name
        return cls

    return wrap


def available() -> list[str]:
    """Names of the registered backbones."""
    return sorted(_REGISTRY)


def build(name: str, **config: object) -> torch.nn.Module:
    """Build backbone ``name``; ``model.config`` records every constructor argument (defaults included)."""
    if name not in _REGISTRY:
        raise ValueError(f"model name: expected one of {available()}, got {name!r}")
    cls = _REGISTRY[name]
    signature = inspect.signature(cls.__init__)
    try:
        bound = signature.bind(None, **config)
    except TypeError as err:
        params = [p for p in signature.parameters if p != "self"]
        raise ValueError(f"model {name!r} config: expected keys among {params}, got {sorted(config)}") from err
    bound.apply_defaults()
    model = cls(**config)
    model.config = {k: v for k, v in bound.arguments.items() if k != "self"}
    return model
