"""Progress of a run: a bar on a terminal, one plain line per epoch anywhere else (a log file, a pipe, a notebook's
captured stderr), nothing when switched off."""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import TextIO

from tqdm.auto import tqdm


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


def _number(value: float) -> str:
    return f"{value:.4g}" if 1e-3 <= abs(value) < 1e4 or value == 0 else f"{value:.3e}"


class Progress:
    """Reports each finished epoch on ``stream`` (default: ``sys.stderr`` when the run starts).

    ``enabled``: ``False`` silences it; otherwise a tqdm bar when ``stream`` is a terminal and, when it is not,
    one line per epoch: ``epoch k/N``, elapsed time, ETA, the training loss, the validation metric ``metric``
    (``val_<metric>``) and the validation equivariance error, as far as the row has them.
    """

    def __init__(self, enabled: bool | None, first: int, total: int, metric: str, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.first, self.total, self.metric = first, total, metric
        self.start = time.perf_counter()
        self.mode = "off" if enabled is False else "bar" if _is_terminal(self.stream) else "lines"
        self.bar = None
        if self.mode == "bar":
            self.bar = tqdm(total=total, initial=first, desc="epochs", file=self.stream)

    def shown(self, row: Mapping[str, float]) -> dict[str, float]:
        """The numbers a report shows of a history row."""
        keys = ("train_loss", f"val_{self.metric}", "val_equivariance_error")
        return {k: float(row[k]) for k in keys if k in row}

    def epoch_done(self, row: Mapping[str, float]) -> None:
        """Report the epoch of ``row`` (its ``epoch`` counts from 0)."""
        if self.mode == "bar":
            self.bar.set_postfix({k: f"{v:.3g}" for k, v in self.shown(row).items()})
            self.bar.update(1)
        elif self.mode == "lines":
            print(self.line(row), file=self.stream, flush=True)

    def line(self, row: Mapping[str, float]) -> str:
        """``epoch 3/10 | elapsed 0:00:12, eta 0:00:28 | train_loss 0.512 | val_rmse 0.301 | ...``."""
        done = int(row["epoch"]) + 1
        elapsed = time.perf_counter() - self.start
        eta = elapsed / max(done - self.first, 1) * (self.total - done)
        parts = [f"epoch {done}/{self.total}", f"elapsed {_clock(elapsed)}, eta {_clock(eta)}"]
        parts += [f"{k} {_number(v)}" for k, v in self.shown(row).items()]
        return " | ".join(parts)

    def close(self) -> None:
        """Close the bar (lines need no closing)."""
        if self.bar is not None:
            self.bar.close()


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False
