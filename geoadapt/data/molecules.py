"""3D molecular datasets from SMILES: rdkit features + conformers, cached, with failures counted."""

from __future__ import annotations

import csv
import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torch_geometric.data import Data
from tqdm.auto import tqdm

from geoadapt.data.cache import atomic_save, cache_root, content_key
from geoadapt.data.featurize import MOLECULE_SPEC, smiles_to_data
from geoadapt.spec import Spec

FEATURIZATION_VERSION = 1  # bump when featurize.py changes, so stale caches are not reused
TASKS = ("regression", "classification")


@dataclass
class MoleculeDataset(Dataset):
    """A list of molecular graphs (one per conformer) with their Spec, task and the SMILES that failed.

    ``graphs[i].y`` is ``(1, num_targets)`` float; ``graphs[i].mol_id`` is the row of the source file.
    """

    name: str
    graphs: list[Data]
    task: str = "regression"
    target_names: list[str] = field(default_factory=list)
    failures: list[tuple[int, str]] = field(default_factory=list)
    spec: Spec = MOLECULE_SPEC

    def __len__(self) -> int:
        return len(self.graphs)

    def __getitem__(self, index: int | Sequence[int] | torch.Tensor) -> Data | MoleculeDataset:
        if isinstance(index, int):
            return self.graphs[index]
        picked = [self.graphs[int(i)] for i in index]
        return MoleculeDataset(self.name, picked, self.task, self.target_names, self.failures, self.spec)

    @property
    def targets(self) -> torch.Tensor:
        """All targets stacked: ``(len, num_targets)``."""
        return torch.cat([g.y for g in self.graphs], dim=0)

    def summary(self) -> str:
        """One line: molecules kept and failed."""
        kept = len({int(g.mol_id) for g in self.graphs})
        return f"{self.name}: {kept} molecules ({len(self.graphs)} graphs), {len(self.failures)} failed to parse/embed"


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
        with multiprocessing.get_context("fork").Pool(workers) as pool:
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

    The cache file is keyed by the content (SMILES, targets, seed, conformers, featurization version),
    so a changed input is never served stale; it is written atomically under :func:`cache_root`.
    """
    if task not in TASKS:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    if len(smiles) != len(targets):
        raise ValueError(f"targets: expected one row per SMILES ({len(smiles)}), got {len(targets)}")
    key = content_key(
        [name, list(smiles), [list(map(float, t)) for t in targets], seed, num_conformers, FEATURIZATION_VERSION]
    )
    path = cache_root() / "molecules" / f"{name}-{key}.pt"
    if cache and path.is_file():
        stored = torch.load(path, weights_only=False)
        return MoleculeDataset(name, stored["graphs"], task, list(target_names), stored["failures"])
    embedded = embed_smiles(smiles, seed, num_conformers, workers, progress)
    graphs, failures = [], []
    for i, (smi, conformers, target) in enumerate(zip(smiles, embedded, targets)):
        if conformers is None:
            failures.append((i, smi))
            continue
        y = torch.tensor([list(map(float, target))], dtype=torch.float32)
        for conf_id, graph in enumerate(conformers):
            graph.y, graph.mol_id, graph.conformer = y, torch.tensor([i]), torch.tensor([conf_id])
            graphs.append(graph)
    if cache:
        atomic_save({"graphs": graphs, "failures": failures}, path)
    return MoleculeDataset(name, graphs, task, list(target_names), failures)


def read_csv_columns(
    path: str | os.PathLike, smiles_column: str, target_columns: Sequence[str], limit: int | None = None
) -> tuple[list[str], list[list[float]]]:
    """SMILES and float targets from a CSV file (any line endings); rows with an empty target are skipped."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {path.name!r} not found in {path.parent}")
    smiles, targets = [], []
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        for column in [smiles_column, *target_columns]:
            if column not in columns:
                raise ValueError(f"column {column!r}: expected one of {columns} in {path}, got a name not among them")
        for row in reader:
            values = [row[c].strip() for c in target_columns]
            if any(v == "" for v in values):
                continue
            smiles.append(row[smiles_column].strip())
            targets.append([float(v) for v in values])
            if limit is not None and len(smiles) >= limit:
                break
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
