"""Energies and forces: MD17 frames in eV, MMFF94-labelled rdkit conformers (units, caching, failures)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from geoadapt.data import potentials
from geoadapt.data.cache import data_root
from geoadapt.data.potentials import KCAL_PER_MOL, load_md17, load_mmff_conformers, mmff_molecule_set


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("GEOADAPT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_kcal_per_mol_in_ev_from_the_si_constants():
    avogadro, elementary_charge = 6.02214076e23, 1.602176634e-19
    assert KCAL_PER_MOL == pytest.approx(4184.0 / (avogadro * elementary_charge), rel=1e-6)


def test_md17_frames_in_ev_match_the_raw_file(cache):
    raw = data_root() / "MD17" / "ethanol" / "raw"
    if not (raw / "md17_ethanol.npz").is_file():
        pytest.skip("MD17 ethanol is not staged under GEOADAPT_DATA")
    arrays = np.load(raw / "md17_ethanol.npz")
    frames = load_md17("ethanol")
    assert len(frames) == len(arrays["E"]) == 20
    for frame, R, E, F in zip(frames, arrays["R"], arrays["E"], arrays["F"]):
        assert frame.energy.shape == (1, 1) and frame.force.shape == (9, 3) and torch.equal(frame.y, frame.energy)
        assert torch.equal(frame.z, torch.as_tensor(arrays["z"]))
        assert np.allclose(frame.pos.numpy(), R, atol=1e-5)
        assert float(frame.energy) == pytest.approx(float(E[0]) * 0.0433641, rel=1e-6)
        assert np.allclose(frame.force.numpy(), F * 0.0433641, rtol=1e-5, atol=1e-6)
    assert (cache / "MD17" / "ethanol" / "processed").is_dir() and not (raw.parent / "processed").exists()
    from geoadapt.data import load

    carded = load("md17_ethanol")  # the dataset card reads the same frames
    assert torch.equal(carded.energies, frames.energies)


def test_mmff_forces_are_minus_the_finite_difference_of_rdkit_energies(cache):
    data = load_mmff_conformers(["CC(=O)N"], conformers_per_molecule=2, displacement=0.05, seed=3)
    assert len(data) == 2 and not data.failures
    molh = Chem.AddHs(Chem.MolFromSmiles("CC(=O)N"))
    AllChem.EmbedMolecule(molh, randomSeed=1)
    field = AllChem.MMFFGetMoleculeForceField(molh, AllChem.MMFFGetMoleculeProperties(molh))
    h = 1e-4
    for graph in data:
        assert torch.equal(graph.z, torch.tensor([a.GetAtomicNum() for a in molh.GetAtoms()]))
        pos = graph.pos.double().numpy()
        assert float(graph.energy) == pytest.approx(field.CalcEnergy(pos.ravel().tolist()) * KCAL_PER_MOL, rel=1e-6)
        fd = np.zeros_like(pos)
        for i in range(pos.shape[0]):
            for k in range(3):
                up, down = pos.copy(), pos.copy()
                up[i, k] += h
                down[i, k] -= h
                fd[i, k] = (field.CalcEnergy(up.ravel().tolist()) - field.CalcEnergy(down.ravel().tolist())) / (2 * h)
        assert np.allclose(graph.force.numpy(), -fd * KCAL_PER_MOL, atol=1e-4)
        assert graph.force.abs().max() > 0.1  # displaced off the minimum: the forces are not zero
    assert not torch.allclose(data[0].pos, data[1].pos, atol=0.1)


def test_mmff_labels_are_cached_by_content_and_written_atomically(cache, monkeypatch):
    first = load_mmff_conformers(["CCO"], conformers_per_molecule=2, seed=0)
    files = list((cache / "potentials").iterdir())
    assert len(files) == 1 and files[0].suffix == ".pt"

    def recompute(*args, **kwargs):
        raise AssertionError("labels recomputed although they were cached")

    monkeypatch.setattr(potentials, "_mmff_conformers", recompute)
    again = load_mmff_conformers(["CCO"], conformers_per_molecule=2, seed=0)
    assert all(torch.equal(a.pos, b.pos) and torch.equal(a.force, b.force) for a, b in zip(first, again))
    with pytest.raises(AssertionError, match="recomputed"):
        load_mmff_conformers(["CCO"], conformers_per_molecule=2, seed=1)  # another seed: another cache entry
    assert len(list((cache / "potentials").iterdir())) == 1  # the failed run left nothing behind


def test_mmff_seeds_reproduce_and_differ(cache):
    a = load_mmff_conformers(["CCO"], conformers_per_molecule=1, seed=0, cache=False)
    b = load_mmff_conformers(["CCO"], conformers_per_molecule=1, seed=0, cache=False)
    c = load_mmff_conformers(["CCO"], conformers_per_molecule=1, seed=1, cache=False)
    assert torch.equal(a[0].pos, b[0].pos) and not torch.allclose(a[0].pos, c[0].pos, atol=1e-3)


def test_mmff_failures_are_counted_with_their_reason(cache):
    data = load_mmff_conformers(["CCO", "not_a_smiles", "B(O)(O)c1ccccc1"], conformers_per_molecule=2)
    assert [(i, reason) for i, _, reason in data.failures] == [
        (1, "SMILES does not parse"),
        (2, "MMFF94 has no parameters for some atom"),
    ]
    assert len(data) == 2 and {int(g.mol_id) for g in data} == {0} and "2 failed" in data.summary()


def test_named_set_keeps_small_mmff_typable_molecules(cache):
    smiles = mmff_molecule_set("nci", limit=4, max_atoms=30)
    assert len(smiles) == 4
    for s in smiles:
        molh = Chem.AddHs(Chem.MolFromSmiles(s))
        assert molh.GetNumAtoms() <= 30 and AllChem.MMFFHasAllMoleculeParams(molh)
    data = load_mmff_conformers("nci", limit=2, conformers_per_molecule=1)
    assert [g.smiles for g in data] == smiles[:2] and data.name == "mmff_nci"
    assert all(g.z.shape[0] == g.pos.shape[0] == g.force.shape[0] and g.energy.shape == (1, 1) for g in data)
    with pytest.raises(ValueError, match=r"molecule set: expected one of \['nci'\], got 'qm9'"):
        load_mmff_conformers("qm9")
    with pytest.raises(ValueError, match="conformers_per_molecule: expected >= 1, got 0"):
        load_mmff_conformers(["CCO"], conformers_per_molecule=0)
