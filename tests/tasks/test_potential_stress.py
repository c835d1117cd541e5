"""The potential task with stress (loss term and metrics by hand) and its energy-shift set-up from E0s, on a periodic
Lennard-Jones potential that implements the energy-shift protocol."""

from __future__ import annotations

import pytest
import torch
from ase.build import bulk
from torch_geometric.data import Batch, Data
from torch_geometric.loader import DataLoader

from geoadapt.data.potentials import PotentialDataset
from geoadapt.dtypes import default_dtype
from geoadapt.io import atoms_to_data
from geoadapt.models.energy_shift import isolated_atom_energies
from geoadapt.models.potential import potential
from geoadapt.tasks import Potential, PotentialLoss, potential_metrics
from geoadapt.train import Trainer
from tests.models.pair_potential import LennardJones


@pytest.fixture
def float64():
    with default_dtype(torch.float64):
        yield


def crystals(truth: torch.nn.Module, count: int = 4, stress: bool = True) -> list[Data]:
    """Rattled Cu cells (some strained) labelled by ``truth``: energy, forces and (``stress``) stress."""
    graphs = []
    for i in range(count):
        atoms = bulk("Cu", "fcc", a=3.6 + 0.05 * i, cubic=True)
        atoms.rattle(0.05, seed=i)
        graph = atoms_to_data(atoms, torch.float64)
        out = potential(truth, Batch.from_data_list([graph]), stress=True)
        graph.energy, graph.force = out.energy.detach(), out.forces.detach()
        if stress:
            graph.stress = out.stress.detach()
        graphs.append(graph)
    return graphs


def test_the_stress_term_and_metrics_by_hand(float64):
    batch = Batch.from_data_list(crystals(LennardJones(epsilon=0.45, sigma=2.25)))
    model = LennardJones()
    out = potential(model, batch, stress=True)
    n = torch.bincount(batch.batch).double().unsqueeze(-1)
    energy = ((out.energy - batch.energy) / n).pow(2).mean()
    force = (out.forces - batch.force).pow(2).mean()
    stress = (out.stress - batch.stress).pow(2).mean()  # eV/Å³, over the 9 components of each graph
    assert float(stress) > 0
    loss = PotentialLoss(1.0, 2.0, 30.0)(out.energy, out.forces, batch, out.stress)
    assert float(loss) == pytest.approx(float(energy + 2.0 * force + 30.0 * stress), rel=1e-12)
    metrics = potential_metrics(model, [batch])
    err = (out.stress - batch.stress).detach()
    assert metrics["stress_mae"] == pytest.approx(1000 * float(err.abs().mean()), rel=1e-12)  # meV/Å³
    assert metrics["stress_rmse"] == pytest.approx(1000 * float(err.pow(2).mean().sqrt()), rel=1e-12)
    del batch.stress  # molecules or crystals without labels: no term, no metric
    assert float(PotentialLoss(1.0, 2.0, 30.0)(out.energy, out.forces, batch)) == pytest.approx(
        float(energy + 2 * force)
    )
    assert "stress_mae" not in potential_metrics(model, [batch])


def test_the_trainer_trains_on_the_stress(float64):
    graphs = crystals(LennardJones(epsilon=0.45, sigma=2.25))
    batch = Batch.from_data_list(graphs)
    losses = {}
    for weight in (0.0, 100.0):
        model = LennardJones()
        task = Potential(stress_weight=weight, refit_shift=False)
        trainer = Trainer(model, task, max_epochs=1, lr=1e-3, groups=[], progress=False)
        out = potential(LennardJones(), batch, stress=True)
        by_hand = PotentialLoss(1.0, 1.0, weight)(out.energy, out.forces, batch, out.stress)
        row = trainer.fit([batch], [batch])[0]
        assert row["train_task_loss"] == pytest.approx(float(by_hand), rel=1e-10)  # the step's loss, stress included
        assert row["val_stress_mae"] > 0 and "stress_mae" in trainer.evaluate([batch])
        losses[weight] = (float(model.epsilon), float(model.sigma))
    assert losses[0.0] != losses[100.0]  # the stress term moved the parameters


def test_isolated_atom_energies_of_the_data_set_the_shift_before_training(float64):
    truth = LennardJones()  # the model's own parameters: the data differs from it by its energy reference only
    e0s = {29: -1.75}
    dataset = PotentialDataset("cu", crystals(truth, stress=False), e0s=e0s)
    model = LennardJones()
    trainer = Trainer(model, "potential", max_epochs=0, groups=[], progress=False)
    trainer.fit(DataLoader(dataset, batch_size=2))
    assert isolated_atom_energies(model, [29]) == pytest.approx(e0s, abs=1e-12)  # one Cu atom alone: its E0
    assert trainer.task.shift_refit is None and trainer.task.shift_change == pytest.approx({29: -1.75})
    # Without E0s: least squares on the training energies, as before (the offset per atom comes back exactly).
    other = LennardJones()
    offset = 0.8
    for graph in dataset.graphs:
        graph.energy = graph.energy + offset * graph.num_nodes
    Trainer(other, "potential", max_epochs=0, groups=[], progress=False).fit(DataLoader(dataset.graphs, batch_size=2))
    assert other.energy_shift()[29] == pytest.approx(offset, abs=1e-6)
