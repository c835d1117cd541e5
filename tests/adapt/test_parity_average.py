"""Parity averaging: ``(f(x) + ρ(P) f(-x)) / 2`` makes a rotation-equivariant potential exactly O(3)."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch_geometric.data import Batch

from geoadapt.adapt import make_strategy
from geoadapt.adapt.parity_average import ParityAveraged
from geoadapt.groups.irreps import haar_rotation
from geoadapt.models.potential import autograd_potential, potential
from tests.train.test_potential_task import PairPotential, labelled

needs_sevenn = pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")


def force_error(model, batch: Batch, M: torch.Tensor) -> float:
    """``|F(Mx) - M F(x)| / |F(x)|``, the input transformed by hand."""
    moved = batch.clone()
    moved.pos = (batch.pos.double() @ M.T).to(batch.pos.dtype)
    forces = potential(model, batch).forces.double()
    return float((potential(model, moved).forces.double() - forces @ M.T).norm() / forces.norm())


def rotation(seed: int = 0) -> torch.Tensor:
    return haar_rotation(1, torch.Generator().manual_seed(seed))[0]


def test_averaged_forces_are_the_mapped_back_mean_and_minus_the_energy_gradient():
    chiral = PairPotential(chirality=0.4)
    batch = Batch.from_data_list(labelled(chiral, 3, seed=0))
    averaged = ParityAveraged(chiral, chiral.spec)
    mirrored = batch.clone()
    mirrored.pos = -batch.pos
    inner, inner_mirror = potential(chiral, batch), potential(chiral, mirrored)
    out = averaged.potential(batch)
    assert torch.allclose(out.energy, (inner.energy + inner_mirror.energy) / 2, atol=1e-6)
    assert torch.allclose(out.forces, (inner.forces - inner_mirror.forces) / 2, atol=1e-6)
    by_autograd = autograd_potential(averaged, batch)  # -d/dpos of the averaged energy
    assert torch.allclose(by_autograd.forces, out.forces, atol=1e-5)
    assert force_error(chiral, batch, -rotation()) > 1e-2
    assert force_error(averaged, batch, -torch.eye(3, dtype=torch.float64)) <= 1e-6


def test_strategy_wraps_and_records_and_needs_positions():
    model = PairPotential(chirality=0.4)
    strategy = make_strategy("parity_average", model)
    assert isinstance(strategy.model, ParityAveraged) and strategy.model.symmetry == "Permutation x E3"
    assert strategy.model.adaptations[-1]["strategy"] == "parity_average"
    from geoadapt.spec import Spec

    with pytest.raises(ValueError, match="expected a Spec with positions"):
        make_strategy("parity_average", model, Spec(fields={"x": "3x0e"}, output="0e", positions=()))


@pytest.fixture(scope="module")
def frames():
    from geoadapt.data.potentials import load_md17

    return Batch.from_data_list(load_md17("ethanol").graphs[:3])


@needs_sevenn
def test_parity_averaged_sevennet_is_exactly_o3_in_float32_and_keeps_se3(frames):
    from geoadapt.models import build

    model = build("sevennet_0")
    averaged = make_strategy("parity_average", model).model
    inversion = -torch.eye(3, dtype=torch.float64)
    assert force_error(model, frames, inversion) > 1e-3  # SevenNet-0 is not mirror-symmetric
    assert force_error(averaged, frames, inversion) <= 1e-6
    rotated = force_error(averaged, frames, rotation())
    assert rotated <= 1e-4  # SE(3) still holds in float32
    moved = frames.clone()
    moved.pos = frames.pos + torch.tensor([0.3, -1.2, 2.0])
    assert torch.allclose(potential(averaged, moved).forces, potential(averaged, frames).forces, atol=1e-4)
    # A general mirror is a rotation times the inversion: its error is the rotation's float32 noise only.
    assert force_error(averaged, frames, -rotation()) <= 2 * rotated + 1e-7


@needs_sevenn
def test_parity_averaged_sevennet_is_o3_to_float64_precision(frames):
    from geoadapt.models import build

    model = build("sevennet_0", dtype=torch.float64)
    averaged = make_strategy("parity_average", model).model
    frames = frames.clone()
    frames.pos = frames.pos.double()
    assert force_error(model, frames, -rotation(1)) > 1e-3
    assert force_error(averaged, frames, -rotation(1)) <= 1e-10
