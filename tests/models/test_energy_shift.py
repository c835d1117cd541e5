"""The per-element energy shift as a protocol: refit by least squares and set from isolated-atom energies, on
SevenNet-0 and on a plain pair potential that implements the protocol."""

from __future__ import annotations

import copy
import importlib.util

import pytest
import torch
from ase.build import bulk
from torch_geometric.data import Data

from geoadapt.dtypes import default_dtype
from geoadapt.io import atoms_to_data
from geoadapt.models import build
from geoadapt.models.energy_shift import isolated_atom_energies, refit_energy_shift, set_isolated_atom_energies
from geoadapt.models.potential import EnergyShift
from geoadapt.structure import to_dtype
from tests.models.pair_potential import LennardJones

needs_sevenn = pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")


def cells(dtype: torch.dtype = torch.float32) -> list[Data]:
    """Rattled CuAu cells of different compositions."""
    graphs = []
    for i, gold in enumerate([[], [1], [1, 2], [0, 1, 2, 3], [3]]):
        atoms = bulk("Cu", "fcc", a=3.75, cubic=True)
        atoms.numbers[gold] = 79
        atoms.rattle(0.05, seed=i)
        graphs.append(atoms_to_data(atoms, dtype))
    return graphs


@pytest.fixture(scope="module")
def sevennet():
    return build("sevennet_0")


def test_a_pair_potential_in_float64_gets_its_shift_refitted_from_float32_graphs():
    with default_dtype(torch.float64):
        model = LennardJones()
    assert isinstance(model, EnergyShift) and model.epsilon.dtype == torch.float64
    offsets = {29: -3.25, 79: 1.5}
    graphs = cells(torch.float32)  # float32 positions: cast to the model's float64 before the forward
    with torch.no_grad():
        for g in graphs:
            g.energy = model(to_dtype(g, torch.float64)) + sum(offsets[int(z)] for z in g.z)
    fit = refit_energy_shift(model, graphs)
    assert fit.rank == 2 and fit.mae_before > 0.1 and fit.mae_after < 1e-9
    assert fit.change == pytest.approx(offsets, abs=1e-9) and model.energy_shift() == pytest.approx(offsets)


def test_isolated_atom_energies_are_set_exactly():
    model = LennardJones()
    e0s = {29: -0.75, 79: -1.25}
    change = set_isolated_atom_energies(model, e0s)
    assert change == pytest.approx(e0s) and isolated_atom_energies(model, [29, 79]) == pytest.approx(e0s)
    with pytest.raises(ValueError, match=r"e0s: expected elements known to the model \[29, 79\], got \[8\]"):
        set_isolated_atom_energies(model, {8: -1.0})
    with pytest.raises(TypeError, match="expected a potential with a per-element energy shift"):
        refit_energy_shift(torch.nn.Linear(3, 1), cells())


@needs_sevenn
def test_sevennet_shift_protocol_moves_energies_by_exactly_the_change(sevennet):
    model = copy.deepcopy(sevennet)
    assert isinstance(model, EnergyShift) and set(model.energy_shift()) == set(model.elements)
    graph = cells()[2]  # two Cu and two Au
    with torch.no_grad():
        before = float(model(graph))
        model.add_energy_shift({29: 0.5, 79: -0.25})
        after = float(model(graph))
    assert after - before == pytest.approx(2 * 0.5 - 2 * 0.25, abs=1e-5)
    assert model.energy_shift()[29] - sevennet.energy_shift()[29] == pytest.approx(0.5, abs=1e-6)
    assert not model.net.rescale_atomic_energy.shift.requires_grad
    with pytest.raises(ValueError, match=r"change: expected elements known to sevennet_0 .* got \[200\]"):
        model.add_energy_shift({200: 1.0})


@needs_sevenn
def test_sevennet_isolated_atoms_take_the_reference_energies(sevennet):
    model = copy.deepcopy(sevennet)
    e0s = {29: -0.25, 79: -0.5}
    set_isolated_atom_energies(model, e0s)
    assert isolated_atom_energies(model, [29, 79]) == pytest.approx(e0s, abs=1e-5)
    with torch.no_grad():
        lone = model(Data(z=torch.tensor([29]), pos=torch.zeros(1, 3)))
    assert float(lone) == pytest.approx(-0.25, abs=1e-5)


@needs_sevenn
def test_sevennet_refit_on_crystals(sevennet):
    model = copy.deepcopy(sevennet)
    offsets = {29: 0.3, 79: -0.7}
    graphs = cells()
    with torch.no_grad():
        for g in graphs:
            g.energy = sevennet(g).double() + sum(offsets[int(z)] for z in g.z)
    fit = refit_energy_shift(model, graphs)
    assert fit.rank == 2 and fit.change == pytest.approx(offsets, abs=1e-5) and fit.mae_after < 1e-5
