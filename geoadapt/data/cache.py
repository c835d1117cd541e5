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
from typing import Any

from torch_geometric.data import Data

from geoadapt.serialization import atomic_save, safe_load

__all__ = [
    "atomic_save",
    "cache_root",
    "content_key",
    "data_root",
    "file_lock",
    "load_graphs",
    "save_graphs",
    "stage_raw",
]


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


# 2: graphs stored as dicts of tensors and read with weights_only (1 pickled PyG classes): old files are never read.
CACHE_FORMAT = 2


def content_key(payload: object) -> str:
    """A short stable hash of any JSON-serializable ``payload`` (and of the cache format)."""
    return hashlib.sha256(json.dumps([CACHE_FORMAT, payload], sort_keys=True).encode()).hexdigest()[:16]


def save_graphs(path: str | os.PathLike, graphs: list[Data], **extra: Any) -> None:
    """Cache ``graphs`` (PyG ``Data``) and plain ``extra`` fields at ``path``: each graph as a dict of its fields,
    so :func:`load_graphs` reads it back without unpickling classes."""
    atomic_save({"graphs": [g.to_dict() for g in graphs], **extra}, path)


def load_graphs(path: str | os.PathLike) -> dict[str, Any]:
    """A cache written by :func:`save_graphs`, its graphs rebuilt as ``Data``; a file holding anything beyond
    tensors and plain data is refused (:class:`~geoadapt.serialization.UnsafeFileError`), never run."""
    hint = "geoadapt did not write it: delete it if you do not know where it came from, and the cache is rebuilt"
    stored = safe_load(path, "cache file", hint)
    if not isinstance(stored, dict) or not isinstance(stored.get("graphs"), list):
        raise ValueError(f"cache file {path}: expected a dict with a 'graphs' list, got {type(stored).__name__}")
    return {**stored, "graphs": [Data.from_dict(g) for g in stored["graphs"]]}


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
    refuse_unsafe_processed(target)
    return target


def refuse_unsafe_processed(folder: Path) -> None:
    """Check PyG's processed files in ``folder/processed`` before PyG reads them.

    PyG retries a file that fails ``weights_only`` loading with ``weights_only=False`` (with a warning), which
    would run whatever a tampered cache holds; reading each file safely first refuses such a file in one line.
    """
    import torch_geometric.data  # noqa: F401  (registers PyG's own data classes as safe to load)

    hint = "delete the processed folder if you do not know where it came from, and PyG rebuilds it"
    for path in sorted((folder / "processed").glob("*.pt")):
        safe_load(path, "cache file", hint)
