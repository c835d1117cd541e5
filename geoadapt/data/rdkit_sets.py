"""Molecule sets that ship inside rdkit, located through ``rdkit.RDConfig`` (no download, no data dir)."""

from __future__ import annotations

import csv
from pathlib import Path

from rdkit import RDConfig


def rdkit_file(*parts: str, contrib: bool = False) -> Path:
    """Path of a file in rdkit's ``Data`` (or ``Contrib``) folder; ``FileNotFoundError`` names it if absent."""
    root = Path(RDConfig.RDContribDir if contrib else RDConfig.RDDataDir)
    path = root.joinpath(*parts)
    if not path.is_file():
        raise FileNotFoundError(
            f"rdkit data file {'/'.join(parts)!r} not found under {root} (this rdkit install does not ship it)"
        )
    return path


def read_nci5k() -> tuple[list[str], list[float]]:
    """The 5,000 NCI molecules of ``Data/NCI/first_5K.smi`` with TPSA labels from ``first_5k.tpsa.csv``."""
    smiles, labels = [], []
    with rdkit_file("NCI", "first_5k.tpsa.csv").open() as handle:
        for row in csv.reader(line for line in handle if not line.startswith("#")):
            if len(row) == 2:
                smiles.append(row[0])
                labels.append(float(row[1]))
    return smiles, labels


def read_chembl2321810() -> tuple[list[str], list[float]]:
    """About 1,000 ChEMBL molecules (``Contrib/FreeWilson/data``) with measured activity (pIC50-like)."""
    activity = {}
    with rdkit_file("FreeWilson", "data", "CHEMBL2321810_act.csv", contrib=True).open() as handle:
        for row in csv.DictReader(handle):
            activity[row["Name"]] = float(row["Act"])
    smiles, labels = [], []
    for line in rdkit_file("FreeWilson", "data", "CHEMBL2321810.smi", contrib=True).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in activity:
            smiles.append(parts[0])
            labels.append(activity[parts[1]])
    return smiles, labels
