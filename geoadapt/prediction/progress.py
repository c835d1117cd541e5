"""Progress of ``predict``: rows read and molecules per second, a bar on a terminal, else one plain line per chunk."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm.auto import tqdm


class Progress:
    """Counts rows as chunks finish and says the rate (inputs per second since this run started).

    On a terminal (``stream.isatty()``) a tqdm bar; otherwise (a log file, a pipe, a batch job) one line per chunk:
    ``predict: 2000 rows read (1996 predicted, 4 failed), 41.3 molecules/s``. ``enabled=False`` says nothing.
    """

    def __init__(
        self, enabled: bool = True, label: str = "predict", stream: TextIO | None = None, unit: str = "molecules"
    ) -> None:
        self.enabled, self.label, self.unit = enabled, label, unit
        self.stream = stream if stream is not None else sys.stderr
        self.started = time.perf_counter()
        self.predicted = self.failed = self.rows = self.first = 0
        terminal = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.bar = tqdm(desc=label, unit=" rows", file=self.stream, leave=False) if terminal else None

    def rate(self) -> float:
        """Inputs per second done in this run (a resumed run counts from where it started)."""
        elapsed = time.perf_counter() - self.started
        return (self.rows - self.first) / elapsed if elapsed > 0 else 0.0

    def start_at(self, rows: int) -> None:
        """A resumed run: ``rows`` were read before it started."""
        self.rows = self.first = rows

    def update(self, rows: int, predicted: int, failed: int) -> None:
        """A chunk is done: ``rows`` read in all, and this chunk's predicted and failed inputs."""
        before, self.rows = self.rows, rows
        self.predicted += predicted
        self.failed += failed
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(rows - before)
            self.bar.set_postfix_str(f"{self.rate():.1f} {self.unit}/s, {self.failed} failed")
        else:
            print(self.line(), file=self.stream, flush=True)

    def line(self) -> str:
        """One line: rows read, predicted, failed, and the rate."""
        return (
            f"{self.label}: {self.rows} rows read ({self.predicted} predicted, {self.failed} failed), "
            f"{self.rate():.1f} {self.unit}/s"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
