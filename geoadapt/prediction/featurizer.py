"""SMILES rows to graphs on every core, one chunk ahead of the model.

The work of :func:`geoadapt.data.molecules.embed_smiles` (rdkit ETKDG + MMFF conformers, ~40-90 ms a molecule on
one core), on a pool of forked worker processes that lives for the whole run: a chunk is handed to the pool
(:meth:`Featurizer.start`) while the model scores the previous one, and collected in row order
(:meth:`Pending.rows`). The conformers are those the datasets make (same featurization, same seed), so a molecule
predicted from its SMILES gets the graph it has in a dataset.
"""

from __future__ import annotations

import multiprocessing
import os
from dataclasses import dataclass
from typing import Any

from geoadapt.data.molecules import _embed_one, _from_arrays, _ignore_interrupts, _parses
from geoadapt.prediction.sources import Row

POOL_CHUNKS_PER_WORKER = 4  # jobs handed to a worker at a time: few enough to balance, enough to amortize the pipe


def default_workers() -> int:
    """Every core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass
class Pending:
    """A chunk handed to the featurizer: its rows and the embedding jobs in flight."""

    rows: list[Row]
    jobs: list[int]  # positions in ``rows`` of the rows being embedded
    result: Any  # the pool's AsyncResult, or the embedded graphs already (one process)

    def collect(self) -> list[Row]:
        """The rows of the chunk, each with its graph or the reason it has none (``parse``, ``embed``)."""
        done = self.result.get() if hasattr(self.result, "get") else self.result
        for position, (_, arrays) in zip(self.jobs, done):
            row = self.rows[position]
            graphs = _from_arrays(arrays)
            if graphs is None:
                row.reason = "parse" if not _parses(row.smiles) else "embed"
            else:
                row.data = graphs[0]
        return self.rows


class Featurizer:
    """Featurizes SMILES rows on ``workers`` processes (``None``: every core; ``1``: in this process).

    Use as a context manager: the worker pool starts on entry and stops on exit (also on Ctrl-C).
    """

    def __init__(self, workers: int | None = None, seed: int = 0) -> None:
        if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool) or workers < 1):
            raise ValueError(f"workers: expected a whole number >= 1 (or None for every core), got {workers!r}")
        self.workers = workers if workers is not None else default_workers()
        self.seed = seed
        self.pool: Any = None

    def __enter__(self) -> Featurizer:
        if self.workers > 1:
            # fork shares the imported rdkit/torch modules, as embed_smiles does.
            self.pool = multiprocessing.get_context("fork").Pool(self.workers, _ignore_interrupts)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.terminate()
            self.pool.join()
            self.pool = None

    def start(self, rows: list[Row]) -> Pending:
        """Hand the rows that need a graph to the workers; returns at once (one process: embeds them now)."""
        jobs = []
        for position, row in enumerate(rows):
            if row.data is not None or row.reason is not None:
                continue
            if not row.smiles:
                row.reason = "empty"
                continue
            jobs.append(position)
        work = [(i, rows[i].smiles, self.seed, 1) for i in jobs]
        if self.pool is None:
            return Pending(rows, jobs, [_embed_one(job) for job in work])
        chunksize = max(1, len(work) // (POOL_CHUNKS_PER_WORKER * self.workers))
        return Pending(rows, jobs, self.pool.map_async(_embed_one, work, chunksize=chunksize))
