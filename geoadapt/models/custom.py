"""Your own model: any ``nn.Module`` that takes a PyG batch, declared with :func:`wrap` so geoadapt can adapt,
save and load it.

::

    model = wrap(MyGNN(hidden=64), spec=Spec(fields={"pos": "1o"}, output="0e"), symmetry="SE3",
                 init={"hidden": 64})
    Trainer(model, "potential", strategy="lora").fit(loader)
    save(model, "mine.pt")
    same = load("mine.pt", builder=lambda **init: MyGNN(**init))  # rebuild it yourself, or
    same = load("mine.pt", trust_code=True)  # import MyGNN from its module and call MyGNN(hidden=64)

The module is changed in place and returned: it gets ``spec`` (how the group acts on its inputs and
output), ``symmetry`` (what it holds by construction, a note for people and reports) and ``arch`` /
``config`` (how to rebuild it: the class's import path and the keyword arguments of its constructor).
A checkpoint stores the state dict, so the rebuilt module must have the same parameters and buffers.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from geoadapt.models.examples import keep_example
from geoadapt.spec import Spec

ARCH = "custom"


def class_path(cls: type) -> str:
    """``"package.module:Qualified.Name"`` of a class."""
    return f"{cls.__module__}:{cls.__qualname__}"


def wrap(
    module: nn.Module, spec: Spec, symmetry: str | None = None, init: Mapping[str, Any] | None = None
) -> nn.Module:
    """Declare ``module``'s Spec and symmetry, and how to rebuild it (``type(module)(**init)``); returns it.

    Args:
        module: takes a PyG ``Batch`` (or the inputs ``spec`` describes) and returns ``(rows, spec.output.dim)``.
        spec: its inputs' fields and its output irreps (e.g. ``Spec(fields={"pos": "1o"}, output="0e")``
            for an energy model).
        symmetry: what it holds by construction, e.g. ``"SE3"`` or ``"Permutation x E3"`` (``None``: unknown).
        init: the keyword arguments that rebuild an untrained copy of ``module`` with its class (plain data:
            they are stored in checkpoints).
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"module: expected a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(spec, Spec):
        raise TypeError(f"spec: expected a geoadapt.Spec, got {type(spec).__name__}")
    if symmetry is not None and not isinstance(symmetry, str):
        raise TypeError(f"symmetry: expected a string such as 'SE3' or None, got {type(symmetry).__name__}")
    module.spec, module.symmetry, module.arch = spec, symmetry, ARCH
    module.config = {"class": class_path(type(module)), "init": dict(init or {}), "symmetry": symmetry}
    register_class(type(module))  # declared by the user in this process: its checkpoints load here without trust
    keep_example(module)  # its checkpoint's graph form is captured on it (loads without the class)
    return module


# Classes the user registered in this process (``register_class``): a checkpoint may name them without trust.
REGISTERED: dict[str, type] = {}


def register_class(cls: type) -> type:
    """Allow checkpoints to rebuild models of ``cls`` (your own, trusted class) without ``trust_code=True``.

    Usable as a decorator. Loading then calls ``cls(**init)`` with the checkpoint's keyword arguments.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"register_class: expected a torch.nn.Module subclass, got {cls!r}")
    REGISTERED[class_path(cls)] = cls
    return cls


def _import_class(path: str) -> type:
    module_name, _, qualname = path.partition(":")
    if "<locals>" in qualname or module_name == "__main__":
        raise ImportError(f"{path} is defined inside a function or a script, not importable")
    target: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _trusted_class(path: str, trust_code: bool) -> type:
    """The class at ``path`` when registered, or imported when ``trust_code``; else one line saying how to allow it."""
    if path in REGISTERED:
        return REGISTERED[path]
    if not trust_code:
        raise ValueError(
            f"model class: the checkpoint asks to import and call {path!r} to rebuild the model, which runs code "
            "from outside geoadapt; allow it for a file you trust with load(path, trust_code=True) (CLI: "
            "trust_code=true), register the class (geoadapt.models.register_class), or pass load(path, builder=...)"
        )
    try:
        cls = _import_class(path)
    except (ImportError, AttributeError) as err:
        raise ValueError(
            f"model class: expected an importable class at {path!r}, got none ({err}); "
            "pass load(path, builder=...) to rebuild the model yourself"
        ) from err
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise TypeError(f"model class: expected a torch.nn.Module subclass at {path!r}, got {cls!r}")
    return cls


def rebuild(
    config: Mapping[str, Any], builder: Callable[..., nn.Module] | None = None, trust_code: bool = False
) -> nn.Module:
    """An untrained copy of a wrapped module from its ``config``: ``builder(**init)`` or ``Class(**init)``.

    The class is imported only when registered (:func:`register_class`) or when ``trust_code`` is true.
    """
    init = dict(config.get("init", {}))
    module = builder(**init) if builder is not None else _trusted_class(str(config["class"]), trust_code)(**init)
    if not isinstance(module, nn.Module):
        raise TypeError(f"builder: expected it to return a torch.nn.Module, got {type(module).__name__}")
    module.symmetry, module.arch = config.get("symmetry"), ARCH
    module.config = {**dict(config), "class": config["class"]}
    keep_example(module)
    return module
