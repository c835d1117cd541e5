"""What ``predict`` reads: rows of a CSV of SMILES, a list of SMILES, a dataset card, graphs, or structures.

Every source is an iterator of :class:`Row`, read lazily: a CSV file is streamed, never held whole in memory, so
a library of any size is read in chunks. A row keeps its number in the source (data rows from 0, as pandas
counts), its id and SMILES when it has them, and its targets when the source gives them.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch_geometric.data import Data

from geoadapt.data.molecules import csv_number

MOLECULE_CARDS = ("molecules_csv", "rdkit")


@dataclass
class Row:
    """One input of ``predict``.

    Attributes:
        row: its row in the source (data rows from 0; a frame's index in a structure file).
        key: the value of the id column, when one was named.
        smiles: its SMILES (molecules).
        targets: its targets, when the source has them (``NaN`` for an empty cell).
        data: the input, once featurized: a PyG graph, or a tensor (an image, a point cloud); graphs and
            structures come with theirs.
        reason: why it has no input (``parse``, ``embed``, ``empty``, ...), when it cannot be featurized.
    """

    row: int
    key: str | None = None
    smiles: str | None = None
    targets: list[float] | None = None
    data: Data | torch.Tensor | None = None
    reason: str | None = None


@dataclass
class Source:
    """An input of ``predict``: its rows (read lazily), their kind and the names of their targets.

    ``kind``: ``"smiles"`` (rows to featurize), ``"items"`` (graphs, images, point clouds) or ``"structures"``
    (graphs of atoms, for potentials).
    """

    rows: Iterator[Row]
    kind: str
    label: str
    target_names: list[str] = field(default_factory=list)
    with_keys: bool = False


def csv_rows(
    path: str | os.PathLike,
    smiles_column: str = "smiles",
    target_columns: Sequence[str] = (),
    id_column: str | None = None,
) -> Iterator[Row]:
    """The rows of a CSV file of molecules, one at a time (the file is streamed, any size)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CSV file {path.name!r} not found in {path.parent}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames
        if not columns:
            raise ValueError(f"data {path}: expected a header line and rows of data, got an empty file")
        for column in [smiles_column, *target_columns, *([id_column] if id_column else [])]:
            if column not in columns:
                raise ValueError(f"column {column!r}: expected one of {columns} in {path}, got a name not among them")
        for row, values in enumerate(reader):
            targets = [csv_number(values[c] or "", c, row, path) for c in target_columns] if target_columns else None
            key = (values[id_column] or "") if id_column else None
            yield Row(row, key, (values[smiles_column] or "").strip(), targets)


def smiles_rows(smiles: Iterable[str], targets: Iterable[Sequence[float]] | None = None) -> Iterator[Row]:
    """Rows of SMILES strings (and their targets), numbered from 0."""
    pairs = zip(smiles, targets) if targets is not None else ((s, None) for s in smiles)
    for row, (text, target) in enumerate(pairs):
        if not isinstance(text, str):
            raise TypeError(f"data[{row}]: expected a SMILES string, got {type(text).__name__}")
        yield Row(row, None, text.strip(), [float(v) for v in target] if target is not None else None)


def _item_row(index: int, item: Any) -> Row:
    """A row of a dataset item: a PyG graph (row: its ``mol_id`` when it has one), or an ``(input, target)`` pair."""
    if isinstance(item, (tuple, list)) and len(item) == 2 and isinstance(item[0], torch.Tensor):
        target = torch.as_tensor(item[1]).reshape(-1).tolist()
        return Row(index, None, None, [float(v) for v in target], item[0])
    if not isinstance(item, Data):
        raise TypeError(
            f"data[{index}]: expected a PyG Data graph or an (input, target) pair, got {type(item).__name__}"
        )
    mol_id, y, smiles = item.get("mol_id"), item.get("y"), item.get("smiles")
    row = int(mol_id.reshape(-1)[0]) if isinstance(mol_id, torch.Tensor) else index
    targets = y.reshape(-1).tolist() if isinstance(y, torch.Tensor) else None
    return Row(row, None, smiles if isinstance(smiles, str) else None, targets, item)


def _dropped_rows(dataset: Any, kept: set[int]) -> list[Row]:
    """The rows a molecule dataset could not featurize, when it holds every row of its source (not a split)."""
    dropped = getattr(dataset, "dropped", None) or {}
    failed = {r: reason for reason in ("parse", "embed") for r in dropped.get(reason, [])}
    skipped = set(dropped.get("nan_target", []))
    total = getattr(dataset, "rows", None)
    if not failed or total is None or kept | set(failed) | skipped != set(range(total)):
        return []
    smiles = dict(getattr(dataset, "failures", []))
    return [Row(r, None, smiles.get(r), None, None, failed[r]) for r in sorted(failed)]


def item_rows(dataset: Iterable[Any]) -> Iterator[Row]:
    """Rows of a dataset or a list: PyG graphs (the row is the graph's ``mol_id`` when it has one, else its index) or
    ``(input, target)`` pairs (images, point clouds). A molecule dataset that holds every row of its source also
    lists the rows it could not featurize."""
    items = getattr(dataset, "graphs", dataset)
    kept = set()
    for index, item in enumerate(items):
        row = _item_row(index, item)
        kept.add(row.row)
        yield row
    yield from _dropped_rows(dataset, kept)


def card_source(card: dict[str, Any], split: str | None, limit: int | None) -> Source:
    """The rows of a dataset card: molecule sets as SMILES rows (streamed; a ``split`` loads its graphs), other
    sets as graphs."""
    from geoadapt.data import load
    from geoadapt.data.cache import data_root

    names = list(card.get("target_columns") or [])
    if card["kind"] == "molecules_csv" and split is None:
        rows = csv_rows(data_root() / card["file"], card["smiles_column"], names)
        return Source(rows, "smiles", card["name"], names)
    if card["kind"] == "rdkit" and split is None:
        from geoadapt.data.rdkit_sets import read_chembl2321810, read_nci5k

        smiles, labels = {"nci5k": read_nci5k, "chembl2321810": read_chembl2321810}[card["rdkit_set"]]()
        return Source(smiles_rows(smiles, [[v] for v in labels]), "smiles", card["name"], names)
    options = {"limit": limit, "progress": False} if card["kind"] in MOLECULE_CARDS else {}
    return Source(item_rows(load(card, split=split, **options)), "items", card["name"], names)


def atoms_rows(frames: Iterable[Any]) -> Iterator[Row]:
    """Rows of ASE ``Atoms``, numbered from 0, as graphs of :func:`geoadapt.io.atoms_to_data`; a frame with no atoms
    or non-finite positions is a failed row."""
    import numpy as np
    from ase import Atoms

    from geoadapt.io import atoms_to_data

    for row, atoms in enumerate(frames):
        if not isinstance(atoms, Atoms):
            raise TypeError(f"data[{row}]: expected an ase.Atoms, got {type(atoms).__name__}")
        if len(atoms) == 0:
            yield Row(row, reason="no atoms")
        elif not (np.isfinite(atoms.positions).all() and np.isfinite(atoms.cell.array).all()):
            yield Row(row, reason="non-finite positions")
        else:
            yield Row(row, data=atoms_to_data(atoms))


def structure_rows(path: str | os.PathLike, format: str | None = None) -> Iterator[Row]:
    """The frames of a structure file (extxyz, or any ``ase.io.iread`` format), streamed, as :func:`atoms_rows`."""
    import ase.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    return atoms_rows(ase.io.iread(path, index=":", format=format))


def _is_path(data: object) -> bool:
    return isinstance(data, (str, os.PathLike)) and (Path(data).is_file() or str(data).lower().endswith(".csv"))


def open_source(
    data: Any,
    smiles_column: str | None = None,
    target_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    split: str | None = None,
    limit: int | None = None,
) -> Source:
    """The rows of ``data``, read lazily, the first ``limit`` only when set.

    ``data``: a CSV file of SMILES (``smiles_column``, default ``smiles``; ``target_columns`` and ``id_column``
    optional), a structure file (extxyz or another ``ase.io`` format), a dataset card name or card (``split``:
    one of its splits; default every row), a list of SMILES, a list of ASE ``Atoms``, or a dataset (or a list) of
    PyG graphs or ``(input, target)`` pairs.
    """
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit: expected a whole number >= 1, got {limit!r}")
    source = _open(data, smiles_column, list(target_columns or []), id_column, split, limit)
    source.rows = islice(source.rows, limit) if limit is not None else source.rows
    return source


def _open(
    data: Any,
    smiles_column: str | None,
    targets: list[str],
    id_column: str | None,
    split: str | None,
    limit: int | None,
) -> Source:
    csv_only = {"smiles_column": smiles_column, "target_columns": targets or None, "id_column": id_column}
    given = [k for k, v in csv_only.items() if v]
    if _is_path(data) and str(data).lower().endswith(".csv"):
        if split is not None:
            raise ValueError(f"split: only used with a dataset card, got split={split!r} for the CSV file {data}")
        rows = csv_rows(data, smiles_column or "smiles", targets, id_column)
        return Source(rows, "smiles", Path(data).stem, targets, id_column is not None)
    if given:
        shown = repr(data) if isinstance(data, (str, os.PathLike)) else f"data of type {type(data).__name__}"
        raise ValueError(f"{given[0]}: only used with a CSV file of SMILES, got {shown}")
    if _is_path(data):
        return Source(structure_rows(data), "structures", Path(data).stem)
    if isinstance(data, os.PathLike) or (isinstance(data, str) and (Path(data).suffix or os.sep in data)):
        raise FileNotFoundError(f"data {str(data)!r}: no such file (and not a dataset card name)")
    if isinstance(data, (str, dict)):
        from geoadapt.data import read_card

        if isinstance(data, str):
            try:
                card = read_card(data)
            except ValueError as err:  # a lone SMILES string reads as a card name: say how to pass molecules
                raise ValueError(f"{err} (molecules: pass a list of SMILES, e.g. [{data!r}])") from None
            return card_source(card, split, limit)
        return card_source(data, split, limit)
    if split is not None:
        raise ValueError(f"split: only used with a dataset card, got split={split!r}")
    if isinstance(data, (list, tuple)) and data and all(isinstance(s, str) for s in data):
        return Source(smiles_rows(data), "smiles", "smiles")
    if isinstance(data, (list, tuple)) and data and type(data[0]).__name__ == "Atoms":
        return Source(atoms_rows(data), "structures", "atoms")
    if isinstance(data, (list, tuple, torch.utils.data.Dataset)):
        return Source(item_rows(data), "items", getattr(data, "name", type(data).__name__))
    raise TypeError(
        "data: expected a CSV file, a structure file, a dataset card name, a list of SMILES or graphs, "
        f"got {type(data).__name__}"
    )
