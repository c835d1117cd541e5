"""SevenNet-0 on crystals and slabs: energies, forces and stresses of sevenn's own SevenNetCalculator."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111
from ase.stress import full_3x3_to_voigt_6_stress
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from geoadapt.io import atoms_to_data
from geoadapt.models import build
from geoadapt.models.geometry import radius_edges
from geoadapt.structure import graph_index

needs_sevenn = pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")
pytestmark = needs_sevenn


def structures() -> dict[str, Atoms]:
    rattled = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    rattled.rattle(0.05, seed=0)
    triclinic = bulk("Cu", "fcc", a=3.6)
    triclinic.set_cell(triclinic.cell.array @ np.array([[1, 0.1, 0], [0, 1, 0.2], [0.05, 0, 1]]), scale_atoms=True)
    alloy = bulk("Cu", "fcc", a=3.7, cubic=True)
    alloy.numbers[[1, 2]] = 79
    alloy.rattle(0.05, seed=3)
    return {
        "bulk fcc Cu": bulk("Cu", "fcc", a=3.6, cubic=True),
        "1-atom primitive cell (smaller than the 5 Å cutoff)": bulk("Cu", "fcc", a=3.6),
        "rattled 2x2x2 supercell": rattled,
        "triclinic cell": triclinic,
        "CuAu alloy": alloy,
        "slab, vacuum along z": fcc111("Cu", (2, 2, 3), vacuum=6.0),
    }


@pytest.fixture(scope="module")
def model():
    return build("sevennet_0")


@pytest.fixture(scope="module")
def calculator():
    from sevenn.calculator import SevenNetCalculator

    from geoadapt.models.sevennet import bundled_checkpoint

    return SevenNetCalculator(str(bundled_checkpoint("sevennet_0")), file_type="checkpoint", device="cpu")


@pytest.mark.parametrize("name", list(structures()))
def test_matches_sevennet_calculator(model, calculator, name):
    atoms = structures()[name]
    atoms.calc = calculator
    periodic = bool(atoms.pbc.all())
    with torch.no_grad():
        out = model.potential(atoms_to_data(atoms), stress=periodic)
    energy = atoms.get_potential_energy()
    assert float(out.energy) == pytest.approx(energy, rel=1e-6, abs=1e-5)
    np.testing.assert_allclose(out.forces.numpy(), atoms.get_forces(), atol=5e-5)
    if periodic:
        assert out.stress.shape == (1, 3, 3)
        stress = full_3x3_to_voigt_6_stress(out.stress[0].double().numpy())
        np.testing.assert_allclose(stress, atoms.get_stress(), atol=1e-6)
    else:
        assert out.stress is None
        with pytest.raises(ValueError, match=r"stress: expected systems periodic in 3D .* \[True, True, False\]"):
            model.potential(atoms_to_data(atoms), stress=True)


def test_a_batch_of_crystals_equals_one_at_a_time(model):
    graphs = [atoms_to_data(a) for a in structures().values() if a.pbc.all()]
    with torch.no_grad():
        joint = model.potential(Batch.from_data_list(graphs), stress=True)
        alone = [model.potential(g, stress=True) for g in graphs]
    assert joint.stress.shape == (len(graphs), 3, 3)
    torch.testing.assert_close(joint.energy, torch.cat([a.energy for a in alone]), rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(joint.forces, torch.cat([a.forces for a in alone]), rtol=0, atol=5e-5)
    torch.testing.assert_close(joint.stress, torch.cat([a.stress for a in alone]), rtol=0, atol=1e-6)


def test_molecules_give_exactly_the_energies_of_the_molecular_route(model, molecules):
    # The energies of the molecular edges (radius_edges, r_j - r_i) fed to SevenNet's network directly.
    import sevenn._keys as KEY

    data = molecules  # heavy atoms of five drug-like molecules (C, N, O)
    pos, batch = data.pos, graph_index(data)
    edges = radius_edges(pos, batch, model.cutoff)
    inputs = {
        KEY.ATOMIC_NUMBERS: data.z,
        KEY.POS: pos,
        KEY.EDGE_IDX: edges,
        KEY.EDGE_VEC: pos[edges[1]] - pos[edges[0]],
        KEY.BATCH: batch,
        KEY.NUM_ATOMS: torch.bincount(batch),
        KEY.CELL_VOLUME: torch.zeros(data.num_graphs),
    }
    with torch.no_grad():
        atomic = model.net(inputs)[KEY.ATOMIC_ENERGY].reshape(-1)
        expected = scatter(atomic, batch, dim=0, dim_size=data.num_graphs, reduce="sum")
        assert torch.equal(model(data).reshape(-1), expected)
