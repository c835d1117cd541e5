"""Where geoadapt reads data and writes caches, and how it writes them (atomically)."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Raw datasets folder: ``root``, else ``$GEOADAPT_DATA``, else ``~/.cache/geoadapt/data``."""
    if root is not None:
        return Path(root)
    env = os.environ.get("GEOADAPT_DATA")
    return Path(env) if env else Path.home() / ".cache" / "geoadapt" / "data"


def cache_root() -> Path:
    """Processed-data cache: ``$GEOADAPT_CACHE``, else ``~/.cache/geoadapt/processed``. Never the raw folder."""
    env = os.environ.get("GEOADAPT_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "geoadapt" / "processed"


def content_key(payload: object) -> str:
    """A short stable hash of any JSON-serializable ``payload``."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def atomic_save(obj: object, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: readers never see half a file."""
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


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """An exclusive inter-process lock (``flock``) on ``path``: parallel test workers process a dataset once."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def stage_raw(source: Path, target: Path, required: list[str], what: str) -> Path:
    """Copy the raw files of a dataset from the read-only data folder into our cache (once, atomically).

    PyG writes ``processed/`` next to ``raw/``; staging keeps the data folder untouched. Raises
    ``FileNotFoundError`` naming the first missing file and the folder it was expected in.
    """
    for name in required:
        if not (source / name).is_file():
            raise FileNotFoundError(
                f"{what}: file {name!r} not found in {source} "
                f"(set GEOADAPT_DATA to the folder that holds it; see datasets/README.md)"
            )
    raw = target / "raw"
    if not raw.is_dir():
        tmp = Path(tempfile.mkdtemp(dir=target.parent if target.parent.exists() else None, prefix=".stage-"))
        shutil.copytree(source, tmp / "raw")
        target.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(tmp / "raw", raw)
        except OSError:
            if not raw.is_dir():
                raise
        shutil.rmtree(tmp, ignore_errors=True)
    return target
