"""Files geoadapt writes and reads back: tensors and plain data only, written atomically, read without running code.

Every file geoadapt reads back (checkpoints, the Trainer's ``last.pt`` / ``best.pt``, processed-data caches) is
read with ``torch.load(weights_only=True)``: PyTorch's restricted unpickler rebuilds tensors and plain containers
and refuses any other Python object *before* calling it, so a file crafted to run code on opening (a
``__reduce__`` payload) is refused, never run. Writers check the same rule (:func:`check_plain`) so that a file
geoadapt writes is always one it can read. Objects such as groups, Specs, strategies and scalers are stored by
name and options and rebuilt by geoadapt's own registries.

Why ``weights_only`` and not safetensors: one file keeps weights, the nested optimizer state of a resumable run
and the metadata together, and the restricted unpickler is PyTorch's default since 2.6; safetensors holds flat
tensors only, so resume states would need a second format.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

PLAIN = (str, int, float, bool, type(None))


class UnsafeFileError(ValueError):
    """A file holds Python objects beyond tensors and plain data: loading it would run code, so it is refused."""


def check_plain(value: Any, field: str) -> None:
    """Raise ``TypeError`` unless ``value`` is tensors and plain data (dict, list, tuple, str, number, bool, None)."""
    if isinstance(value, (*PLAIN, torch.Tensor, torch.dtype, torch.device)):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{field}: expected str or int keys, got {type(key).__name__} key {key!r}")
            check_plain(item, f"{field}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{field}[{i}]")
        return
    raise TypeError(
        f"{field}: expected tensors and plain data (dict, list, str, number, bool, None), "
        f"got {type(value).__qualname__}"
    )


def atomic_save(obj: object, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: readers never see half a file.

    ``obj`` must be tensors and plain data (:func:`check_plain`), so that :func:`safe_load` reads it back.
    """
    check_plain(obj, Path(path).name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            torch.save(obj, handle)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def safe_load(path: str | os.PathLike, what: str, hint: str = "") -> Any:
    """Read a file written by :func:`atomic_save` without running any code it may hold (tensors on the CPU).

    Raises ``FileNotFoundError`` when missing, :class:`UnsafeFileError` (one line naming the object) when the file
    holds anything beyond tensors and plain data, ``ValueError`` when it is not a torch file. ``what`` names the
    file's role in messages (``"checkpoint"``, ``"resume state"``, ``"cache file"``); ``hint`` says what to do.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path.name!r} not found in {path.parent.resolve()}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise ValueError(f"{what} {path}: expected a file geoadapt wrote (a torch zip archive), got other data")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        found = _GLOBAL.search(str(err))
        holds = f"a Python object ({found.group(1)})" if found else "Python objects"
        raise UnsafeFileError(
            f"{what} {path}: refused: it holds {holds} beyond tensors and plain data, which loading would run"
            + (f"; {hint}" if hint else "")
        ) from None
    except (zipfile.BadZipFile, RuntimeError, EOFError, OSError) as err:
        raise ValueError(f"{what} {path}: expected a file geoadapt wrote, got unreadable data ({err})") from err
