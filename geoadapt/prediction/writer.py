"""Predictions written as they come: CSV files that grow chunk by chunk, atomic per chunk, resumable after a kill.

A run writes ``<out>.partial`` (and ``.partial`` files beside each side file: the failed rows, the forces) and
renames them to their names when it finishes, so a file under its own name is complete. After each chunk the
rows are appended, flushed to disk (``fsync``), and only then is the state file ``<out>.partial.json`` replaced
(atomically) with the number of input rows read and the size of each file. An interrupted run (Ctrl-C, an error,
``kill -9``, a lost machine) keeps what it wrote; ``resume=True`` cuts each file back to the size the state records
(dropping a chunk half written when the run stopped) and goes on after the last row written.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoadapt.prediction.table import Predictions

HEADERS = {"failed": ["row", "id", "smiles", "reason"], "forces": ["row", "atom", "fx", "fy", "fz"]}


@dataclass
class OutputFiles:
    """Where a run writes: the predictions, the rows that failed, and (potentials, when asked) the forces."""

    predictions: Path
    failed: Path
    forces: Path | None = None

    @classmethod
    def beside(cls, out: str | os.PathLike, forces: str | os.PathLike | None = None) -> OutputFiles:
        """``out``, the failed rows in ``<stem>.failed.csv`` beside it, and ``forces`` when given."""
        out = Path(out)
        if out.suffix.lower() != ".csv":
            raise ValueError(f"out: expected a .csv file to write the predictions to, got {str(out)!r}")
        for key, path in (("out", out), ("forces", forces)):
            if path is not None and not Path(path).parent.is_dir():
                raise ValueError(f"{key}: expected a file in a folder that exists, got {str(path)!r}")
        return cls(out, out.with_name(f"{out.stem}.failed.csv"), Path(forces) if forces else None)

    def named(self) -> dict[str, Path]:
        files = {"predictions": self.predictions, "failed": self.failed}
        return {**files, "forces": self.forces} if self.forces is not None else files


def partial(path: Path) -> Path:
    """Where ``path`` is written until the run finishes."""
    return path.with_name(path.name + ".partial")


def _ours(path: Path) -> bool:
    """Whether ``path`` is a file ``predict`` wrote (its header starts with ``row``)."""
    with path.open(newline="") as handle:
        return next(csv.reader(handle), [None])[:1] == ["row"]


def _lines(rows: list[list[Any]]) -> bytes:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode()


class StreamingCsv:
    """The files of one run of ``predict`` (see the module docstring); ``settings`` must match to resume."""

    def __init__(self, files: OutputFiles, settings: dict[str, Any], overwrite: bool = False, resume: bool = False):
        self.files, self.settings, self.overwrite, self.resume = files, settings, overwrite, resume
        self.state_path = partial(files.predictions).with_suffix(".partial.json")
        self.state: dict[str, Any] = {}
        self.fresh = False  # begun afresh, no chunk written yet: the files hold only what begin() put there

    def begin(self) -> int:
        """Check the paths, pick up an interrupted run when resuming; returns the input rows already done."""
        for name, path in self.files.named().items():
            if path.exists() and not self.overwrite:
                raise FileExistsError(f"{name} file {path} exists; pass overwrite=true to replace it")
            if path.exists() and not _ours(path):
                raise ValueError(f"out {path}: expected a file geoadapt predict wrote (header 'row,...'), got another")
        if self.resume and self.state_path.is_file():
            return self._pick_up()
        for path in self.files.named().values():
            partial(path).unlink(missing_ok=True)
        self.state = {"settings": self.settings, "rows": 0, "predicted": 0, "failed": 0, "header": None, "sizes": {}}
        for name, path in self.files.named().items():
            self.state["sizes"][name] = self._append(partial(path), _lines([HEADERS[name]]) if name in HEADERS else b"")
        self._save_state()
        self.fresh = True
        return 0

    def abandon(self) -> None:
        """After an error before the first chunk of a fresh run (the input could not be read): remove the files
        :meth:`begin` created, so a refused input leaves nothing behind. A run that wrote rows keeps them."""
        if not self.fresh:
            return
        for path in self.files.named().values():
            partial(path).unlink(missing_ok=True)
        self.state_path.unlink(missing_ok=True)
        self.fresh = False

    def _read_state(self) -> dict[str, Any]:
        """The state file, checked: JSON (nothing in it runs) whose sizes fit the partial files it describes; one
        ``ValueError`` naming the file otherwise (a damaged or crafted state is never acted on)."""
        where = f"resume state {self.state_path}"
        try:
            state = json.loads(self.state_path.read_bytes().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{where}: expected the JSON geoadapt predict writes, got other bytes ({err})") from None
        sizes = state.get("sizes") if isinstance(state, dict) else None
        if not isinstance(sizes, dict) or not isinstance(state.get("settings"), dict):
            raise ValueError(f"{where}: expected an object with 'settings' and 'sizes', got {type(state).__name__}")
        if not (isinstance(state.get("rows"), int) and state["rows"] >= 0):
            raise ValueError(f"{where}: expected 'rows' a whole number >= 0, got {state.get('rows')!r}")
        for name, path in self.files.named().items():
            size, kept = sizes.get(name), partial(path)
            actual = kept.stat().st_size if kept.is_file() else None
            if actual is None or not isinstance(size, int) or not 0 <= size <= actual:
                raise ValueError(
                    f"{where}: expected a size between 0 and that of {kept} ({actual}) for {name}, got {size!r}"
                )
        return state

    def _pick_up(self) -> int:
        state = self._read_state()
        if state.get("settings") != self.settings:
            changed = sorted(
                k for k in {**state["settings"], **self.settings} if state["settings"].get(k) != self.settings.get(k)
            )
            raise ValueError(
                f"resume: expected the settings of the interrupted run in {partial(self.files.predictions)}, got "
                f"other values of {changed}; run it with the same keys, or start afresh (resume=false)"
            )
        for name, path in self.files.named().items():
            with partial(path).open("r+b") as handle:  # a chunk half written when the run stopped goes
                handle.truncate(state["sizes"][name])
        self.state = state
        return int(state["rows"])

    def _append(self, path: Path, data: bytes) -> int:
        with path.open("ab") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
            return handle.tell()

    def _save_state(self) -> None:
        tmp = self.state_path.with_name(self.state_path.name + ".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.state_path)

    def append(self, predictions: Predictions, rows: int) -> None:
        """Write one chunk's predictions (and failed rows, forces); ``rows``: input rows read in all after it."""
        self.fresh = False
        columns = predictions.columns()
        header = list(columns)
        data = b""
        if self.state["header"] is None:
            self.state["header"] = header
            data = _lines([header])
        elif header != self.state["header"]:
            raise ValueError(f"predictions columns: expected {self.state['header']} in every chunk, got {header}")
        data += _lines([list(cells) for cells in zip(*columns.values())])
        sizes = self.state["sizes"]
        sizes["predictions"] = self._append(partial(self.files.predictions), data)
        failed = [[f.row, f.key or "", f.smiles or "", f.reason] for f in predictions.failed]
        sizes["failed"] = self._append(partial(self.files.failed), _lines(failed))
        if self.files.forces is not None:
            forces = [
                [row, atom, *(str(v) for v in force)]
                for row, per in zip(predictions.rows, predictions.forces or [])
                for atom, force in enumerate(per.numpy())
            ]
            sizes["forces"] = self._append(partial(self.files.forces), _lines(forces))
        self.state.update(
            rows=rows,
            predicted=self.state["predicted"] + len(predictions),
            failed=self.state["failed"] + len(predictions.failed),
        )
        self._save_state()  # after the data is on disk: the state never counts rows that are not there

    def finish(self) -> dict[str, Any]:
        """Rename every file to its name (a file of failed rows only when some failed); the run's counts."""
        if self.state["header"] is None:  # no rows at all: a header of its own marks the file as predict's
            self._append(partial(self.files.predictions), _lines([["row"]]))
        for name, path in self.files.named().items():
            if name == "failed" and self.state["failed"] == 0:
                partial(path).unlink(missing_ok=True)
                path.unlink(missing_ok=True)  # ours (checked in begin): a stale list from an earlier run
                continue
            os.replace(partial(path), path)
        self.state_path.unlink(missing_ok=True)
        return {k: self.state[k] for k in ("rows", "predicted", "failed")}
