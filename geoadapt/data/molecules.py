"""3D molecular datasets from SMILES: rdkit features + conformers, cached, with failures counted."""

from __future__ import annotations

import csv
import math
import multiprocessing
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rdkit import Chem
from torch.utils.data import Dataset
from torch_geometric.data import Data
from tqdm.auto import tqdm

from geoadapt.data.cache import cache_root, content_key, load_graphs, save_graphs
from geoadapt.featurize import MOLECULE_SPEC, smiles_to_data
from geoadapt.spec import Spec
from geoadapt.tasks import check_card_task

# Bump when featurize.py or what the cache file holds changes, so stale caches are not reused.
# 2: the cache holds dropped rows by reason (parse, embed) instead of one list of failures.
FEATURIZATION_VERSION = 2
DROP_REASONS = {"nan_target": "NaN or empty targets", "parse": "unparsable SMILES", "embed": "failed 3D embeddings"}
MISSING = {"", "nan", "na", "n/a", "none", "null"}  # target cells read as NaN (then dropped, and counted)


@dataclass
class MoleculeDataset(Dataset):
    """A list of molecular graphs (one per conformer) with their Spec, task and the rows that were dropped.

    ``graphs[i].y`` is ``(1, num_targets)`` float; ``graphs[i].mol_id`` is the row of the source (rows count
    data rows from 0, as pandas does). ``dropped`` maps a reason (``nan_target``, ``parse``, ``embed``) to
    the rows dropped for it; ``failures`` lists ``(row, smiles)`` of the molecules rdkit could not use.
    """

    name: str
    graphs: list[Data]
    task: str = "regression"
    target_names: list[str] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    spec: Spec = MOLECULE_SPEC
    dropped: dict[str, list[int]] = field(default_factory=dict)
    rows: int | None = None

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int | Sequence[int] | torch.Tensor) -> Data | MoleculeDataset:
        if isinstance(index, int):
            return self.graphs[index]
        picked = [self.graphs[int(i)] for i in index]
        return MoleculeDataset(
            self.name, picked, self.task, self.target_names, self.failures, self.spec, self.dropped, self.rows
        )

    @property
    def targets(self) -> torch.Tensor:
        """All targets stacked: ``(len, num_targets)``."""
        return torch.cat([g.y for g in self.graphs], dim=0)

    def dropped_counts(self, first: int = 5) -> dict[str, Any]:
        """``{parse: n, embed: n, nan_target: n, first_rows: {reason: [row, ...]}}`` (the first ``first`` rows)."""
        counts: dict[str, Any] = {reason: len(self.dropped.get(reason, [])) for reason in DROP_REASONS}
        counts["first_rows"] = {r: rows[:first] for r, rows in self.dropped.items() if rows}
        return counts

    def dropped_line(self, first: int = 5) -> str | None:
        """One line saying how many rows were dropped and why, with the first rows; None when none were."""
        parts = []
        for reason, what in DROP_REASONS.items():
            rows = self.dropped.get(reason, [])
            if rows:
                shown = ", ".join(map(str, rows[:first])) + (", ..." if len(rows) > first else "")
                parts.append(f"{len(rows)} {what} (row{'s' if len(rows) > 1 else ''} {shown})")
        if not parts:
            return None
        total = sum(len(v) for v in self.dropped.values())
        of = f" of {self.rows}" if self.rows is not None else ""
        return f"{self.name}: dropped {total}{of} rows: " + "; ".join(parts)

    def summary(self) -> str:
        """One line: molecules kept and rows dropped."""
        kept = len({int(g.mol_id) for g in self.graphs})
        return (
            f"{self.name}: {kept} molecules ({len(self.graphs)} graphs), {len(self.failures)} failed to parse/embed"
            + "".join(f", {len(self.dropped.get(r, []))} {r}" for r in ("nan_target",) if self.dropped.get(r))
        )


def _embed_one(args: tuple[int, str, int, int]) -> tuple[int, list[dict] | None]:
    # Workers return numpy arrays, not tensors: torch shares each returned tensor through a file
    # descriptor, and thousands of molecules exhaust the descriptor limit.
    index, smiles, seed, num_conformers = args
    graphs = smiles_to_data(smiles, seed=seed, num_conformers=num_conformers)
    if graphs is None:
        return index, None
    return index, [
        {k: (v.numpy() if isinstance(v, torch.Tensor) else v) for k, v in g.to_dict().items()} for g in graphs
    ]


def _from_arrays(graphs: list[dict] | None) -> list[Data] | None:
    if graphs is None:
        return None
    return [Data(**{k: (torch.from_numpy(v) if hasattr(v, "dtype") else v) for k, v in g.items()}) for g in graphs]


def _ignore_interrupts() -> None:
    # Ctrl-C reaches every process of the group: the parent handles it (and stops the pool), the
    # workers stay quiet instead of printing a traceback each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def embed_smiles(
    smiles: Sequence[str], seed: int = 0, num_conformers: int = 1, workers: int | None = None, progress: bool = True
) -> list[list[Data] | None]:
    """Featurize and embed every SMILES (in parallel over ``workers`` processes); ``None`` for failures."""
    workers = workers if workers is not None else min(os.cpu_count() or 1, 4)
    jobs = [(i, s, seed, num_conformers) for i, s in enumerate(smiles)]
    results: list[list[Data] | None] = [None] * len(jobs)
    bar = tqdm(total=len(jobs), desc="conformers", disable=None if progress else True, leave=False)
    if workers > 1 and len(jobs) >= 64:
        # fork shares the imported rdkit/torch modules; chunks amortize the inter-process traffic.
        with multiprocessing.get_context("fork").Pool(workers, _ignore_interrupts) as pool:
            for i, graphs in pool.imap_unordered(_embed_one, jobs, chunksize=16):
                results[i] = _from_arrays(graphs)
                bar.update()
    else:
        for job in jobs:
            i, graphs = _embed_one(job)
            results[i] = _from_arrays(graphs)
            bar.update()
    bar.close()
    return results


def _parses(smiles: str) -> bool:
    mol = Chem.MolFromSmiles(smiles.strip())
    return mol is not None and mol.GetNumAtoms() > 0


def build_molecules(
    name: str,
    smiles: Sequence[str],
    targets: Sequence[Sequence[float]],
    task: str = "regression",
    target_names: Sequence[str] = (),
    seed: int = 0,
    num_conformers: int = 1,
    workers: int | None = None,
    cache: bool = True,
    progress: bool = True,
) -> MoleculeDataset:
    """Build (or load from cache) the 3D molecular dataset for ``smiles`` with ``targets`` ``(n, T)``.

    Rows with a NaN target, an unparsable SMILES or a failed embedding are dropped and counted by reason
    in ``dataset.dropped`` (row numbers index ``smiles``). The cache file is keyed by the content (SMILES,
    targets, seed, conformers, featurization version), so a changed input is never served stale; it is
    written atomically under :func:`cache_root`.
    """
    check_card_task(task)
    if len(smiles) != len(targets):
        raise ValueError(f"targets: expected one row per SMILES ({len(smiles)}), got {len(targets)}")
    targets = [list(map(float, t)) for t in targets]
    key = content_key([name, list(smiles), targets, seed, num_conformers, FEATURIZATION_VERSION])
    path = cache_root() / "molecules" / f"{name}-{key}.pt"
    if cache and path.is_file():
        stored = load_graphs(path)
        return MoleculeDataset(
            name,
            stored["graphs"],
            task,
            list(target_names),
            stored["failures"],
            dropped=stored["dropped"],
            rows=len(smiles),
        )
    dropped: dict[str, list[int]] = {reason: [] for reason in DROP_REASONS}
    keep = []
    for i, target in enumerate(targets):
        if any(math.isnan(v) for v in target):
            dropped["nan_target"].append(i)
        else:
            keep.append(i)
    embedded = embed_smiles([smiles[i] for i in keep], seed, num_conformers, workers, progress)
    graphs, failures = [], []
    for i, conformers in zip(keep, embedded):
        if conformers is None:
            failures.append((i, smiles[i]))
            dropped["embed" if _parses(smiles[i]) else "parse"].append(i)
            continue
        y = torch.tensor([targets[i]], dtype=torch.float32)
        for conf_id, graph in enumerate(conformers):
            graph.y, graph.mol_id, graph.conformer = y, torch.tensor([i]), torch.tensor([conf_id])
            graphs.append(graph)
    if cache:
        save_graphs(path, graphs, failures=failures, dropped=dropped)
    return MoleculeDataset(name, graphs, task, list(target_names), failures, dropped=dropped, rows=len(smiles))


def csv_number(text: str, column: str, row: int, path: Path) -> float:
    """A target cell of a CSV file as a number: NaN for an empty or missing-value cell (``MISSING``); one
    ``ValueError`` naming the column, row and file for anything else that is not a number."""
    if text.strip().lower() in MISSING:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"column {column!r} row {row} of {path}: expected a number (or an empty cell), got {text.strip()!r}"
        ) from None


def read_csv_columns(
    path: str | os.PathLike, smiles_column: str, target_columns: Sequence[str], limit: int | None = None
) -> tuple[list[str], list[list[float]]]:
    """SMILES and float targets of the first ``limit`` data rows of a CSV file (any line endings).

    Empty or ``NaN`` target cells are read as NaN (:func:`build_molecules` drops and counts those rows);
    any other value that is not a number is an error naming the column and row.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {path.name!r} not found in {path.parent}")
    if not target_columns:
        raise ValueError(f"target_columns: expected at least one column of {path}, got none")
    smiles, targets = [], []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames
        if not columns:
            raise ValueError(f"data {path}: expected a header line and rows of data, got an empty file")
        for column in [smiles_column, *target_columns]:
            if column not in columns:
                raise ValueError(f"column {column!r}: expected one of {columns} in {path}, got a name not among them")
        for row, values in enumerate(reader):
            if limit is not None and row >= limit:
                break
            smiles.append((values[smiles_column] or "").strip())
            targets.append([csv_number(values[c] or "", c, row, path) for c in target_columns])
    if not smiles:
        raise ValueError(f"data {path}: expected rows of data after the header, got none (the file has no rows)")
    return smiles, targets


def from_csv(
    path: str | os.PathLike,
    smiles_column: str = "smiles",
    target_columns: Sequence[str] = ("y",),
    task: str = "regression",
    name: str | None = None,
    seed: int = 0,
    num_conformers: int = 1,
    workers: int | None = None,
    limit: int | None = None,
    progress: bool = True,
) -> MoleculeDataset:
    """A 3D molecular dataset (rdkit features + conformers, cached) from any CSV of SMILES and targets.

    Example: ``from_csv("delaney-processed.csv", "smiles", ["measured log solubility in mols per litre"])``.
    """
    smiles, targets = read_csv_columns(path, smiles_column, list(target_columns), limit)
    return build_molecules(
        name or Path(path).stem,
        smiles,
        targets,
        task,
        list(target_columns),
        seed,
        num_conformers,
        workers,
        progress=progress,
    )
