"""Small trained models and their molecules for the prediction tests (ESOL's first molecules, one or two epochs)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch_geometric.loader import DataLoader

from geoadapt import Trainer
from geoadapt.checkpoints import load as load_model
from geoadapt.checkpoints import save
from geoadapt.data import MoleculeDataset, load
from geoadapt.models import build

MOLECULES = 40


@dataclass
class Fitted:
    """A Trainer after ``fit``, the molecules it saw, its checkpoint and the checkpoint loaded back."""

    trainer: Trainer
    data: MoleculeDataset
    path: Path
    model: torch.nn.Module

    def loader(self) -> DataLoader:
        return DataLoader(self.data.graphs, batch_size=16)


def _fit(task: str, data: MoleculeDataset, folder: Path) -> Fitted:
    torch.manual_seed(0)
    trainer = Trainer(build("naive_gnn"), task, max_epochs=2, groups=[], progress=False, lr=3e-3)
    trainer.fit(DataLoader(data.graphs, batch_size=16, shuffle=True))
    path = save(trainer.predictor(), folder / f"{task}.pt", extra={"task": task})
    return Fitted(trainer, data, path, load_model(path))


@pytest.fixture(scope="package")
def esol() -> MoleculeDataset:
    return load("esol", limit=MOLECULES, progress=False)


@pytest.fixture(scope="package")
def regressor(esol, tmp_path_factory) -> Fitted:
    """naive_gnn regressing ESOL's log solubility (targets standardized in training)."""
    return _fit("regression", esol, tmp_path_factory.mktemp("regressor"))


@pytest.fixture(scope="package")
def classifier(esol, tmp_path_factory) -> Fitted:
    """naive_gnn (one logit) telling ESOL molecules above the median log solubility from those below."""
    median = esol.targets.median()
    graphs = []
    for graph in esol.graphs:
        copy = graph.clone()
        copy.y = (graph.y > median).float()
        graphs.append(copy)
    data = MoleculeDataset("esol_binary", graphs, "classification", ["soluble"], rows=esol.rows)
    return _fit("classification", data, tmp_path_factory.mktemp("classifier"))


def write_csv(path: Path, data: MoleculeDataset, extra: list[tuple[str, str]] = ()) -> Path:
    """The molecules of ``data`` as a CSV of ``name,smiles,target`` (then ``extra`` rows of SMILES and target)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["name", "smiles", "target"])
        for graph in data.graphs:
            writer.writerow([f"m{int(graph.mol_id)}", graph.smiles, float(graph.y.reshape(-1)[0])])
        for smiles, target in extra:
            writer.writerow(["extra", smiles, target])
    return path
