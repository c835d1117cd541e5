"""Run folders: resolved config, metrics, summary, checkpoints and plots, published only on success.

A run works in ``<out>.partial`` (marked as geoadapt's by a ``.geoadapt-run`` file) while it holds an
exclusive lock on ``<out>.lock``, and renames the partial folder to ``out`` when it succeeds. An interrupted
run keeps its partial folder with ``last.pt`` so that ``resume=true`` can continue it. geoadapt deletes a
folder only when it holds the marker, that is, only a folder geoadapt made.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

MARKER = ".geoadapt-run"
# Keys that may differ between an interrupted run and its resumption: they do not change the result.
RESUME_FREE_KEYS = ("resume", "overwrite", "progress")


class RunFolderError(ValueError):
    """A run folder that cannot be used as asked (exists, is locked, was not made by geoadapt, ...)."""


def partial_folder(path: str | os.PathLike) -> Path:
    """``<out>.partial``: where a run works until it succeeds."""
    final = Path(os.path.abspath(path))
    return final.with_name(final.name + ".partial")


def made_by_geoadapt(folder: Path) -> bool:
    """Whether ``folder`` is a directory that holds geoadapt's run marker."""
    return folder.is_dir() and (folder / MARKER).is_file()


def _delete_run(folder: Path) -> None:
    if not made_by_geoadapt(folder):  # checked again right before deleting: never rmtree a user's folder
        raise RunFolderError(
            f"out: {folder} was not made by geoadapt (it holds no {MARKER} file); refusing to delete it"
        )
    shutil.rmtree(folder)


@contextmanager
def _exclusive(final: Path) -> Iterator[None]:
    """Hold ``flock`` on ``<out>.lock`` for the whole run; a second run on the same ``out`` fails at once."""
    lock = final.with_name(final.name + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = lock.open("a")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise RunFolderError(
                f"out: another geoadapt run is writing {final} (it holds {lock}); wait for it or choose another out"
            ) from None
        # The run before us may have removed the lock file after we opened it: then lock the new file.
        if lock.exists() and os.stat(lock).st_ino == os.fstat(handle.fileno()).st_ino:
            break
        handle.close()
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)  # removed while still held, so no other run can hold a stale copy
        handle.close()


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    plain = yaml.safe_load(yaml.safe_dump(config, sort_keys=True))
    return {k: v for k, v in plain.items() if k not in RESUME_FREE_KEYS}


def _check_resumable(partial: Path, config: dict[str, Any] | None) -> None:
    stored_path = partial / "config.yaml"
    if config is None or not stored_path.is_file():
        return
    stored, current = _comparable(yaml.safe_load(stored_path.read_text()) or {}), _comparable(config)
    for key in sorted(set(stored) | set(current)):
        if stored.get(key) != current.get(key):
            raise RunFolderError(
                f"resume: the interrupted run in {partial} used {key}={stored.get(key)!r}, got {key}="
                f"{current.get(key)!r}; resume with the same settings or start again with overwrite=true"
            )


def _prepare_partial(partial: Path, overwrite: bool, resume: bool, config: dict[str, Any] | None) -> None:
    if partial.exists() and not made_by_geoadapt(partial):
        raise RunFolderError(
            f"out: {partial} exists and was not made by geoadapt (no {MARKER} file); move it away or choose another out"
        )
    resumable = (partial / "last.pt").is_file()
    if resumable and resume:
        _check_resumable(partial, config)
        return
    if resumable and not overwrite:
        raise RunFolderError(
            f"out: {partial} holds an interrupted run; continue it with resume=true or start again with overwrite=true"
        )
    if partial.exists():
        _delete_run(partial)
    partial.mkdir(parents=True)
    (partial / MARKER).write_text("a run folder made by geoadapt; overwrite=true may replace it\n")
    if config is not None:
        write_config(partial, config)


def _publish(partial: Path, final: Path, overwrite: bool) -> None:
    if not final.exists():
        partial.rename(final)
    elif not overwrite:
        raise RunFolderError(f"out: {final} appeared while this run was going; the run is kept in {partial}")
    else:
        # Move the old run aside first, so that at every moment one complete run folder is in place.
        if not made_by_geoadapt(final):
            raise RunFolderError(f"out: {final} was not made by geoadapt (it holds no {MARKER} file); refusing")
        trash = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.replaced-"))
        final.rename(trash / final.name)
        partial.rename(final)
        shutil.rmtree(trash)
    (final / "last.pt").unlink(missing_ok=True)  # the resumable state is not needed once the run is published


def check_out(path: str | os.PathLike, overwrite: bool) -> None:
    """:class:`RunFolderError` (one line) unless ``path`` can become a run folder: new, or (``overwrite``) one
    geoadapt made. Commands call it before any work; :func:`run_folder` again under its lock."""
    final = Path(os.path.abspath(path))
    if final.exists() and not final.is_dir():
        raise RunFolderError(f"out: expected a run folder, got the existing file {final}")
    if final.exists() and not overwrite:
        raise RunFolderError(f"out: expected a new run folder, got existing {final} (pass overwrite=true)")
    if final.exists() and not made_by_geoadapt(final):
        raise RunFolderError(
            f"out: {final} was not made by geoadapt (it holds no {MARKER} file); refusing to delete it "
            "with overwrite=true: choose another out"
        )


@contextmanager
def run_folder(
    path: str | os.PathLike, overwrite: bool = False, resume: bool = False, config: dict[str, Any] | None = None
) -> Iterator[Path]:
    """Work in ``<path>.partial`` under a lock; rename it to ``path`` only when the block succeeds.

    Args:
        path: the run folder to make. If it exists it is replaced only with ``overwrite=True`` and only
            when geoadapt made it (it holds the ``.geoadapt-run`` marker).
        resume: keep the partial folder of an interrupted run (with ``last.pt``) instead of starting anew;
            ``config`` must then equal the interrupted run's (``config.yaml``) but for ``resume``,
            ``overwrite`` and ``progress``.
        config: the resolved configuration, written to ``config.yaml`` when the folder is made.

    Raises :class:`RunFolderError` (one line) when the folder cannot be used. A block that fails or is
    interrupted keeps the partial folder when it holds ``last.pt`` (to resume from) and removes it otherwise.
    """
    final = Path(os.path.abspath(path))
    partial = partial_folder(final)
    with _exclusive(final):
        check_out(final, overwrite)
        _prepare_partial(partial, overwrite, resume, config)
        try:
            yield partial
        except BaseException:
            if not (partial / "last.pt").is_file():  # nothing to resume: leave nothing half-written behind
                _delete_run(partial)
            raise
        _publish(partial, final, overwrite)


def write_config(folder: Path, config: dict[str, Any]) -> None:
    """``config.yaml``: the fully resolved configuration of the run."""
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def write_summary(folder: Path, summary: dict[str, Any]) -> None:
    """``summary.json``: final metrics and provenance (written last, atomically)."""
    clean = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in summary.items()}
    tmp = folder / ".summary.json.tmp"
    tmp.write_text(json.dumps(clean, indent=2, default=str))
    tmp.replace(folder / "summary.json")


def run_name(folder: str | os.PathLike) -> str:
    """The name of the run in ``folder``: the folder's name, without the ``.partial`` a run works in."""
    name = Path(folder).name
    return name.removesuffix(".partial")


def finish_run(
    folder: Path,
    trainer: Any,
    val_loader: Any,
    name: str,
    data: str,
    summary_extra: dict[str, Any],
    record: dict[str, Any],
) -> dict[str, Any]:
    """Complete a run folder after ``trainer.fit`` (which wrote the history and the plots): validation metrics,
    ``model.pt`` and, last (a folder with ``summary.json`` is complete), ``summary.json``; returns the summary.

    Args:
        trainer: the fitted :class:`~geoadapt.train.Trainer`; its predictor is saved (the adapted model with its
            target scaler, if any).
        name, data: the run's name (``summary["run"]``) and its data (recorded in the checkpoint).
        summary_extra: provenance for the summary (command, strategy, regularizers' logs, ...).
        record: what the checkpoint records of the training (``extra``: task, augmentation, ...).
    """
    from geoadapt.checkpoints import save

    metrics = trainer.evaluate(val_loader)
    summary = {"run": name, **summary_extra, **{f"val_{k}": v for k, v in metrics.items()}}
    summary["epochs"] = len(trainer.history)
    if trainer.error_by_angle:
        summary["error_vs_angle"] = dict(trainer.error_by_angle)
    scores = {k: v for k, v in summary.items() if isinstance(v, float)}
    save(trainer.predictor(), folder / "model.pt", dataset=data, metrics=scores, extra=record)
    write_summary(folder, summary)
    return summary
