"""geoadapt models as ASE calculators: sevenn's own calculator, ASE's Lennard-Jones, a relaxation and NVE dynamics."""

from __future__ import annotations

import copy
import importlib.util

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.lj import LennardJones as AseLennardJones
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS

from geoadapt.checkpoints import save
from geoadapt.dtypes import default_dtype
from geoadapt.io import Calculator
from geoadapt.models import build
from tests.models.pair_potential import LennardJones

needs_sevenn = pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")
# Total-energy drift per atom allowed over 100 steps of 1 fs at 300 K (measured: 5.5e-6 eV/atom, docs/potentials.md).
DRIFT_PER_ATOM = 1e-4


@pytest.fixture(scope="module")
def sevennet():
    return build("sevennet_0")


def alloy() -> Atoms:
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.numbers[[0, 3]] = 79
    atoms.rattle(0.05, seed=1)
    return atoms


@needs_sevenn
def test_equals_sevennet_calculator_and_loads_checkpoints(sevennet, tmp_path):
    from sevenn.calculator import SevenNetCalculator

    from geoadapt.models.sevennet import bundled_checkpoint

    theirs = alloy()
    theirs.calc = SevenNetCalculator(str(bundled_checkpoint("sevennet_0")), file_type="checkpoint", device="cpu")
    path = save(sevennet, tmp_path / "sevennet.pt")
    for calc in (Calculator(sevennet, device="cpu"), Calculator(path, device="cpu")):
        ours = alloy()
        ours.calc = calc
        assert ours.get_potential_energy() == pytest.approx(theirs.get_potential_energy(), rel=1e-6)
        assert ours.get_potential_energy(force_consistent=True) == ours.get_potential_energy()
        np.testing.assert_allclose(ours.get_forces(), theirs.get_forces(), atol=5e-5)
        assert ours.get_stress().shape == (6,)
        np.testing.assert_allclose(ours.get_stress(), theirs.get_stress(), atol=1e-6)
        assert ours.get_forces().dtype == np.float64 and calc.dtype == torch.float32


@needs_sevenn
def test_an_adapted_model_gets_its_stress_through_the_calculator(sevennet):
    # parity_average wraps SevenNet: the calculator's results are the mean over the crystal and its inversion.
    from geoadapt.adapt import make_strategy

    averaged = make_strategy("parity_average", copy.deepcopy(sevennet)).model
    atoms = alloy()
    atoms.calc = Calculator(averaged, device="cpu")
    results = []
    for sign in (1, -1):
        image = alloy()
        image.set_cell(sign * image.cell.array)
        image.positions = sign * alloy().positions
        image.calc = Calculator(sevennet, device="cpu")
        results.append((image.get_potential_energy(), sign * image.get_forces(), image.get_stress()))
    energy, forces, stress = (np.mean(values, axis=0) for values in zip(*results))
    assert atoms.get_potential_energy() == pytest.approx(energy, rel=1e-6)
    np.testing.assert_allclose(atoms.get_forces(), forces, atol=5e-5)
    np.testing.assert_allclose(atoms.get_stress(), stress, atol=1e-6)
    assert np.abs(results[0][2] - results[1][2]).max() > 1e-5  # the inversion is not a symmetry of this model


def test_any_energy_model_matches_ase_lennard_jones():
    # A plain model that reads pos and cell gets forces and the stress from the strain derivative.
    with default_dtype(torch.float64):
        model = LennardJones(epsilon=0.4, sigma=2.3, rc=5.0)
    for atoms in (alloy(), bulk("Cu", "fcc", a=3.6)):
        reference = atoms.copy()
        reference.calc = AseLennardJones(epsilon=0.4, sigma=2.3, rc=5.0)
        atoms.calc = Calculator(model, device="cpu")
        assert atoms.get_potential_energy() == pytest.approx(reference.get_potential_energy(), rel=1e-12)
        np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=1e-12)
        np.testing.assert_allclose(atoms.get_stress(), reference.get_stress(), atol=1e-12)


def test_the_stress_is_computed_only_when_asked_for():
    # Dynamics ask for forces only: the strain derivative is left out, and a later get_stress computes it.
    with default_dtype(torch.float64):
        model = LennardJones(epsilon=0.4, sigma=2.3, rc=5.0)
    atoms, reference = alloy(), alloy()
    reference.calc = AseLennardJones(epsilon=0.4, sigma=2.3, rc=5.0)
    atoms.calc = Calculator(model, device="cpu")
    atoms.get_forces()
    assert "stress" not in atoms.calc.results and "energy" in atoms.calc.results
    np.testing.assert_allclose(atoms.get_stress(), reference.get_stress(), atol=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), reference.get_forces(), atol=1e-12)


def test_molecules_have_no_stress():
    with default_dtype(torch.float64):
        model = LennardJones()
    dimer = Atoms("Cu2", positions=[[0, 0, 0], [2.5, 0.3, 0]])
    dimer.calc = Calculator(model, device="cpu")
    forces = dimer.get_forces()
    assert forces.shape == (2, 3) and np.allclose(forces.sum(0), 0, atol=1e-12)
    with pytest.raises(PropertyNotImplementedError, match=r"stress: expected a system periodic in 3D"):
        dimer.get_stress()
    with pytest.raises(TypeError, match="model: expected a torch module or a checkpoint path, got int"):
        Calculator(3)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device: expected a CUDA device"):
            Calculator(model, device="cuda")


@needs_sevenn
def test_bfgs_relaxes_a_rattled_cell(sevennet):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.rattle(0.1, seed=3)
    atoms.calc = Calculator(sevennet, device="cpu")
    start_energy, start_fmax = atoms.get_potential_energy(), np.linalg.norm(atoms.get_forces(), axis=1).max()
    assert BFGS(atoms, logfile=None).run(fmax=0.02, steps=60)
    assert atoms.get_potential_energy() < start_energy - 0.01
    assert np.linalg.norm(atoms.get_forces(), axis=1).max() < 0.02 < start_fmax


@needs_sevenn
def test_nve_conserves_the_total_energy(sevennet):
    atoms = bulk("Cu", "fcc", a=3.61, cubic=True)
    atoms.calc = Calculator(sevennet, device="cpu")
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(0))
    Stationary(atoms)
    dynamics = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    energies = []
    dynamics.attach(lambda: energies.append(atoms.get_total_energy()), interval=1)
    dynamics.run(100)
    drift = np.abs(np.array(energies) - energies[0]).max() / len(atoms)
    assert len(energies) == 101 and atoms.get_temperature() > 50  # it moved
    assert drift < DRIFT_PER_ATOM
