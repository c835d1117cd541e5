"""A potential on an extxyz file: energies per structure (eV) and forces to a side file, as the model computes them,
each structure with its own equivariance error (eV) on request."""

from __future__ import annotations

import csv

import ase.io
import torch
from torch_geometric.data import Batch

import geoadapt
from geoadapt.io import atoms_to_data
from geoadapt.models.potential import potential
from geoadapt.prediction import predict_to_csv
from tests.io.frames import crystals
from tests.models.pair_potential import LennardJones


def test_energies_and_forces_of_an_extxyz_file_are_the_models(tmp_path):
    frames = crystals()
    ase.io.write(tmp_path / "frames.extxyz", frames)
    model = LennardJones()
    summary = predict_to_csv(
        model, tmp_path / "frames.extxyz", tmp_path / "energies.csv", forces_out=tmp_path / "forces.csv",
        with_equivariance=True, group="o3", chunk_size=3,
    )  # fmt: skip
    assert summary["task"] == "potential" and summary["predicted"] == len(frames)
    expected = potential(model, Batch.from_data_list([atoms_to_data(a) for a in frames]))
    rows = list(csv.DictReader((tmp_path / "energies.csv").open()))
    assert [r["row"] for r in rows] == ["0", "1", "2", "3"]
    energies = torch.tensor([float(r["energy"]) for r in rows])
    assert torch.allclose(energies, expected.energy.reshape(-1), atol=1e-5)
    assert max(float(r["equivariance_abs"]) for r in rows) < 1e-4  # eV: a pair potential is E(3) invariant
    forces = list(csv.DictReader((tmp_path / "forces.csv").open()))
    assert len(forces) == sum(len(a) for a in frames) and forces[4]["row"] == "1" and forces[4]["atom"] == "0"
    values = torch.tensor([[float(f[k]) for k in ("fx", "fy", "fz")] for f in forces])
    assert torch.allclose(values, expected.forces, atol=1e-5)


def test_a_list_of_atoms_predicts_without_a_file():
    frames = crystals()
    predictions = geoadapt.predict(LennardJones(), frames, forces=True)
    assert predictions.task.name == "potential" and [f.shape[0] for f in predictions.forces] == [len(a) for a in frames]
