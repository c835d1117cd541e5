"""The symmetry API on periodic systems, checked in float64 against rotations done by hand: the cell turns with
the atoms, translations move atoms only, permutations remap atoms; SevenNet-0's energy is invariant and its forces
and stress turn as a vector and a rank-2 tensor."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from ase.build import bulk, fcc111
from e3nn import io as e3nn_io
from e3nn import o3
from torch_geometric.data import Batch

from geoadapt.dtypes import default_dtype
from geoadapt.groups import E3, O3, SO3, Permutation, Translation
from geoadapt.groups.irreps import haar_rotation
from geoadapt.io import atoms_to_data
from geoadapt.metrics import equivariance_error
from geoadapt.models import build
from geoadapt.models.potential import Forces
from geoadapt.spec import Spec

needs_sevenn = pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def crystal(seed: int = 0):
    """A rattled triclinic CuAu cell (4 atoms), float64."""
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.set_cell(atoms.cell.array @ np.array([[1, 0.08, 0], [0, 1, 0.12], [0.05, 0, 1]]), scale_atoms=True)
    atoms.numbers[[1, 2]] = 79
    atoms.rattle(0.08, seed=seed)
    return atoms_to_data(atoms, torch.float64)


def slab():
    atoms = fcc111("Cu", (2, 2, 2), vacuum=5.0)
    atoms.rattle(0.05, seed=4)
    return atoms_to_data(atoms, torch.float64)


@pytest.fixture(scope="module")
def model64():
    return build("sevennet_0", dtype=torch.float64)


@needs_sevenn
def test_energy_invariant_forces_and_stress_equivariant_under_rotations(model64):
    data = crystal()
    out = model64.potential(data, stress=True)
    for R in haar_rotation(3, torch.Generator().manual_seed(0)):
        turned = data.clone()
        turned.pos, turned.cell = data.pos @ R.T, data.cell @ R.T  # lattice vectors are the rows of the cell
        moved = model64.potential(turned, stress=True)
        assert abs(float(moved.energy - out.energy)) < 1e-12 * abs(float(out.energy))  # measured: 4e-16
        assert relative(moved.forces, out.forces @ R.T) < 1e-12  # 4e-15
        assert relative(moved.stress[0], R @ out.stress[0] @ R.T) < 1e-12  # 3e-15
    # The same check fails when the cell is left behind: a different crystal.
    R = haar_rotation(1, torch.Generator().manual_seed(1))[0]
    wrong = data.clone()
    wrong.pos = data.pos @ R.T
    assert abs(float(model64(wrong) - out.energy)) > 1e-3


@needs_sevenn
def test_a_slab_turns_with_its_cell(model64):
    data = slab()
    out = model64.potential(data)
    R = haar_rotation(1, torch.Generator().manual_seed(2))[0]
    turned = SO3().act(R[None], data, model64.spec)
    moved = model64.potential(turned)
    assert abs(float(moved.energy - out.energy)) < 1e-10 * abs(float(out.energy))
    assert relative(moved.forces, out.forces @ R.T) < 1e-9


@needs_sevenn
def test_lattice_translations_translations_and_permutations_keep_the_energy(model64):
    data = crystal(seed=5)
    out = model64.potential(data, stress=True)
    images = data.clone()
    images.pos = data.pos.clone()
    images.pos[0] += data.cell[0, 1] - 2 * data.cell[0, 2]  # atom 0 replaced by one of its periodic images
    images.pos[3] -= data.cell[0, 0]
    shifted = Translation().act(torch.tensor([[0.7, -1.3, 2.1]], dtype=torch.float64), data, model64.spec)
    perm = torch.tensor([2, 0, 3, 1])
    permuted = Permutation().act(perm, data, model64.spec)
    for moved, forces in ((images, out.forces), (shifted, out.forces), (permuted, out.forces[perm])):
        other = model64.potential(moved, stress=True)
        assert abs(float(other.energy - out.energy)) < 1e-10 * abs(float(out.energy))
        assert relative(other.forces, forces) < 1e-9
        assert relative(other.stress, out.stress) < 1e-9


def test_group_actions_on_a_batch_of_crystals():
    batch = Batch.from_data_list([crystal(1), crystal(2), atoms_to_data(bulk("Cu", "fcc", a=3.6), torch.float64)])
    spec = Spec(fields={"pos": "1o"})
    R = O3().sample(3, torch.Generator().manual_seed(3))  # one element per graph, reflections included
    t = torch.randn(3, 3, dtype=torch.float64)
    moved = E3().act((R, t), batch, spec)
    by_hand = torch.einsum("bij,bkj->bki", R, batch.cell)  # each row a -> R a
    assert torch.allclose(moved.cell, by_hand, atol=1e-14)
    assert torch.allclose(moved.pos, torch.einsum("nij,nj->ni", R[batch.batch], batch.pos) + t[batch.batch])
    assert torch.equal(moved.pbc, batch.pbc) and torch.equal(moved.z, batch.z)
    assert torch.equal(Translation().act(t, batch, spec).cell, batch.cell)  # translations: atoms only
    perm = Permutation().sample_like(batch, torch.Generator().manual_seed(4))
    permuted = Permutation().act(perm, batch, spec)
    assert torch.equal(permuted.cell, batch.cell) and torch.equal(permuted.pbc, batch.pbc)
    assert torch.equal(permuted.z, batch.z[perm]) and torch.equal(permuted.pos, batch.pos[perm])


def test_stress_turns_as_its_irreps_in_e3nn():
    # A stress field (rows of 3x3 matrices) named 0e+2e turns as R S R^T; that is D(R) of 0e+2e in e3nn's basis.
    generator = torch.Generator().manual_seed(5)
    data = crystal()
    stress = torch.randn(1, 3, 3, dtype=torch.float64, generator=generator)
    data.stress = stress + stress.transpose(1, 2)
    spec = Spec(fields={"pos": "1o", "stress": "0e+2e"})
    with default_dtype(torch.float64):
        cartesian = e3nn_io.CartesianTensor("ij=ji")
        for R in [*O3().sample(4, generator)]:
            turned = O3().act(R[None], data, spec).stress[0]
            irreps = cartesian.from_cartesian(data.stress[0])
            expected = cartesian.to_cartesian(o3.Irreps("0e+2e").D_from_matrix(R) @ irreps)
            assert torch.allclose(turned, expected, atol=1e-12)
    with pytest.raises(ValueError, match=r"field 'stress': expected irreps 3x1o .* got 1x1o"):
        O3().act(R[None], data, Spec(fields={"pos": "1o", "stress": "1o"}))


@needs_sevenn
def test_equivariance_error_of_forces_on_crystals_is_float64_noise(model64):
    batch = Batch.from_data_list([crystal(6), crystal(7)])
    forces = Forces(model64)
    generator = torch.Generator().manual_seed(8)
    error = equivariance_error(forces, batch, E3(proper=True), forces.spec, n_samples=3, generator=generator)
    assert error.shape == (3, 2) and float(error.max()) < 1e-9
