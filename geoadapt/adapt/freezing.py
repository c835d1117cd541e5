"""Which parameters train: full fine-tuning, linear probe, freezing by name pattern, soft freeze, head policy."""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping, Sequence

import torch
from e3nn import o3
from torch import nn

log = logging.getLogger("geoadapt")

HEAD_POLICIES = ("reuse", "new")


def head_module(model: nn.Module, head: str = "head") -> nn.Module:
    """The submodule named ``head`` (``ValueError`` listing the top-level names when absent)."""
    modules = dict(model.named_modules())
    if head not in modules:
        raise ValueError(
            f"head: expected a submodule name of {type(model).__name__} "
            f"(top level: {[n for n, _ in model.named_children()]}), got {head!r}"
        )
    return modules[head]


def reset_head(model: nn.Module, head: str = "head") -> str:
    """Re-initialize every layer of the head; returns the message to log (a fresh head moves step-0 error).

    Layers with ``reset_parameters`` use it; e3nn ``o3.Linear`` (which has none) gets the draw it gets at
    construction. ``ValueError`` when a head parameter belongs to no layer that can be re-initialized: a
    "new" head that silently kept pretrained weights would not be new.
    """
    count, redrawn = 0, set()
    for module in head_module(model, head).modules():
        if module is model:
            continue
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
        elif isinstance(module, o3.Linear):
            with torch.no_grad():  # as o3.Linear.__init__: standard normal weights, zero biases
                module.weight.normal_()
                module.bias.zero_()
        else:
            continue
        count += 1
        redrawn.update(id(p) for p in module.parameters())
    kept = [n for n, p in head_module(model, head).named_parameters() if id(p) not in redrawn]
    if kept:
        raise ValueError(
            f"head policy 'new': expected every parameter of head '{head}' in a layer that can be re-initialized "
            f"(reset_parameters or e3nn o3.Linear), got {kept} that would keep their pretrained values"
        )
    message = f"head policy: NEW head '{head}' ({count} layers re-initialized); expect a jump in step-0 error"
    log.info(message)
    return message


def apply_head_policy(model: nn.Module, policy: str = "reuse", head: str = "head") -> str:
    """``reuse`` keeps the pretrained head, ``new`` re-initializes it; the message says which, plainly."""
    if policy not in HEAD_POLICIES:
        raise ValueError(f"head policy: expected one of {HEAD_POLICIES}, got {policy!r}")
    if policy == "new":
        return reset_head(model, head)
    message = f"head policy: REUSE the pretrained head '{head}'"
    log.info(message)
    return message


def matches(name: str, patterns: Sequence[str]) -> bool:
    """True when the parameter or module ``name`` matches a glob, or lies under a module that does."""
    return any(fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(name, pat + ".*") for pat in patterns)


def freeze(model: nn.Module, patterns: Sequence[str]) -> list[str]:
    """Freeze parameters whose name matches any glob ``pattern`` (e.g. ``"convs.*"``); returns their names."""
    frozen = []
    for name, p in model.named_parameters():
        if matches(name, patterns):
            p.requires_grad_(False)
            frozen.append(name)
    if patterns and not frozen:
        raise ValueError(
            f"freeze patterns: expected to match parameter names like "
            f"{[n for n, _ in model.named_parameters()][:4]}, got {list(patterns)} matching none"
        )
    return frozen


def linear_probe(model: nn.Module, head: str = "head") -> list[str]:
    """Freeze everything but the head; returns the names of the trainable parameters."""
    head_module(model, head)
    trainable = []
    for name, p in model.named_parameters():
        keep = name.startswith(head + ".")
        p.requires_grad_(keep)
        if keep:
            trainable.append(name)
    return trainable


def soft_freeze_groups(model: nn.Module, lr: float, scales: Mapping[str, float]) -> list[dict]:
    """Optimizer parameter groups: parameters matching a glob in ``scales`` train at ``lr * scale``.

    The first matching pattern wins; the rest train at ``lr``. ``scale = 0`` is a hard freeze.
    """
    groups: dict[float, list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        scale = next((s for pat, s in scales.items() if matches(name, [pat])), 1.0)
        groups.setdefault(float(scale), []).append(p)
    return [{"params": ps, "lr": lr * s} for s, ps in groups.items() if s > 0]
