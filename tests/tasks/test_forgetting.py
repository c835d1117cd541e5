"""Errors of a potential against labels (energy per atom, forces, stress), checked against ASE computing them."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from ase.calculators.lj import LennardJones as AseLennardJones

from geoadapt.data.emt import emt_structures
from geoadapt.dtypes import default_dtype
from geoadapt.io import from_atoms
from geoadapt.tasks.forgetting import potential_errors
from tests.models.pair_potential import LennardJones


def test_errors_are_those_ase_computes_with_the_same_potential():
    frames = emt_structures(6, seed=4, elements=("Cu", "Au"))
    graphs = from_atoms(frames, dtype=torch.float64).graphs
    with default_dtype(torch.float64):  # parameters exactly 0.3 and 2.3, as ASE's
        model = LennardJones(epsilon=0.3, sigma=2.3)
    energy, forces, stress = [], [], []
    for atoms in frames:  # ASE's own Lennard-Jones (the same pair form) against the EMT labels, in numpy
        theirs = atoms.copy()
        theirs.calc = AseLennardJones(epsilon=0.3, sigma=2.3, rc=5.0, smooth=False)
        energy.append(abs(theirs.get_potential_energy() - atoms.info["REF_energy"]) / len(atoms))
        forces.append(theirs.get_forces() - atoms.arrays["REF_forces"])
        stress.append(theirs.get_stress(voigt=False) - _full(atoms))
    forces = np.concatenate(forces)
    errors = potential_errors(model, graphs, batch_size=4)
    assert errors["energy_mae"] == pytest.approx(1000 * np.mean(energy), rel=1e-9)
    assert errors["force_mae"] == pytest.approx(1000 * np.abs(forces).mean(), rel=1e-9)
    assert errors["force_rmse"] == pytest.approx(1000 * np.sqrt((forces**2).mean()), rel=1e-9)
    assert errors["stress_mae"] == pytest.approx(1000 * np.abs(np.stack(stress)).mean(), rel=1e-8)
    assert model.training  # left in the mode it was in


def _full(atoms) -> np.ndarray:
    from ase.stress import voigt_6_to_full_3x3_stress

    return voigt_6_to_full_3x3_stress(atoms.info["REF_stress"])


def test_stress_is_reported_only_when_every_graph_has_one_and_labels_are_required():
    graphs = from_atoms(emt_structures(3, seed=0, elements=("Cu",)), stress=False).graphs
    model = LennardJones()
    assert "stress_mae" not in potential_errors(model, graphs)
    del graphs[1].force
    with pytest.raises(ValueError, match=r"graphs\[1\]: expected labels 'energy' and 'force', got no 'force'"):
        potential_errors(model, graphs)
    with pytest.raises(ValueError, match="graphs: expected at least one labelled graph, got none"):
        potential_errors(model, [])


def test_the_trainer_reports_forgetting_next_to_the_target_errors():
    from torch_geometric.loader import DataLoader

    from geoadapt.tasks import Potential
    from geoadapt.tasks.forgetting import forgetting
    from geoadapt.train import Trainer
    from geoadapt.train.replay import pseudolabel
    from tests.train.test_replay import pair_model, source_like, target_graphs

    source = pair_model()
    held_out = pseudolabel(source, source_like(4, seed=2))
    val = DataLoader(target_graphs(4, seed=5), batch_size=4)
    untrained = Trainer(copy.deepcopy(source), Potential(forgetting=held_out, refit_shift=False), groups=[])
    assert untrained.evaluate(val)["forgetting_force_mae"] == 0.0  # the source model on its own labels
    task = Potential(forgetting=held_out, refit_shift=False)
    trainer = Trainer(copy.deepcopy(source), task, groups=[], max_epochs=2, lr=0.05, progress=False)
    trainer.fit(DataLoader(target_graphs(8), batch_size=4), val)
    last = trainer.history[-1]
    by_hand = forgetting(trainer.model, held_out)  # meV; the task's metrics are in its own units (eV/Å for forces)
    assert last["val_forgetting_force_mae"] == pytest.approx(by_hand["force_mae"] / 1000, rel=1e-6)
    assert last["val_forgetting_energy_mae"] == pytest.approx(by_hand["energy_mae"], rel=1e-6)
    assert last["val_forgetting_stress_mae"] == pytest.approx(by_hand["stress_mae"], rel=1e-6)
    assert by_hand["force_mae"] > 1.0 and "val_force_mae" in last  # it moved, and the target errors are beside it
    assert "val_forgetting_force_mae" not in Trainer(copy.deepcopy(source), "potential", groups=[]).evaluate(val)
