"""A MACE model built from mace-torch's own classes, as a geoadapt energy model: the glue against mace-torch's own
pipeline, exact E(3) equivariance kept under LoRA, the energy shift protocol, the calculator and checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule
from e3nn import o3
from mace import data as mace_data
from mace.modules import MACE, RealAgnosticResidualInteractionBlock
from mace.tools import torch_geometric as mace_geometric
from mace.tools import utils as mace_utils
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

from geoadapt.adapt import make_strategy
from geoadapt.adapt.adapters import IrrepsAdapter
from geoadapt.data.emt import emt_structures, isolated_atoms
from geoadapt.dtypes import default_dtype
from geoadapt.groups import O3
from geoadapt.io import Calculator, atoms_to_data, from_atoms
from geoadapt.metrics import equivariance_error
from geoadapt.checkpoints import load, save
from geoadapt.models import wrap
from geoadapt.models.energy_shift import isolated_atom_energies, refit_energy_shift, set_isolated_atom_energies
from geoadapt.models.mace import MACE_SPEC, MACEEnergy
from geoadapt.models.potential import EnergyShift, Forces, potential
from geoadapt.train import Trainer

ELEMENTS = [1, 6, 8, 29, 79]
CUTOFF = 4.5


def make_mace(dtype: torch.dtype = torch.float64, seed: int = 0) -> MACE:
    """A small MACE from mace-torch's classes, random init, E0s of -1 ... -5 eV."""
    torch.manual_seed(seed)
    with default_dtype(dtype):
        return MACE(
            r_max=CUTOFF, num_bessel=6, num_polynomial_cutoff=5, max_ell=2,
            interaction_cls=RealAgnosticResidualInteractionBlock,
            interaction_cls_first=RealAgnosticResidualInteractionBlock, num_interactions=2,
            num_elements=len(ELEMENTS), hidden_irreps=o3.Irreps("8x0e+8x1o"), MLP_irreps=o3.Irreps("8x0e"),
            atomic_energies=-np.arange(1.0, 1.0 + len(ELEMENTS)), avg_num_neighbors=20.0, atomic_numbers=ELEMENTS,
            correlation=2, gate=torch.nn.functional.silu,
        )  # fmt: skip


def make_model(dtype: torch.dtype = torch.float64, seed: int = 0) -> MACEEnergy:
    return wrap(MACEEnergy(make_mace(dtype, seed)), spec=MACE_SPEC, symmetry="Permutation x E3")


def crystals() -> list[Atoms]:
    """EMT-labelled Cu and Au cells: bulk, an alloy and a vacancy (rattled, strained)."""
    return emt_structures(3, seed=0, elements=("Cu", "Au"), kinds=("bulk", "alloy", "vacancy"))


def batch_of(atoms: list[Atoms], dtype: torch.dtype = torch.float64) -> Batch:
    return Batch.from_data_list([atoms_to_data(a, dtype) for a in atoms])


def mace_own(mace: MACE, atoms: list[Atoms], stress: bool) -> dict[str, torch.Tensor]:
    """Energies, forces (and stresses) from mace-torch's own data pipeline and forward."""
    table = mace_utils.AtomicNumberTable(ELEMENTS)
    with default_dtype(torch.float64):  # mace-torch's data pipeline makes its tensors in the default dtype
        data = [
            mace_data.AtomicData.from_config(mace_data.config_from_atoms(a), z_table=table, cutoff=CUTOFF)
            for a in atoms
        ]
        batch = next(iter(mace_geometric.dataloader.DataLoader(data, batch_size=len(data), shuffle=False)))
        return mace(batch.to_dict(), compute_stress=stress)


def test_the_glue_gives_mace_torchs_own_energies_forces_and_stresses():
    model = make_model()
    water = molecule("H2O")
    water.rattle(0.05, seed=1)
    for atoms, stress in ((crystals(), True), ([water], False)):
        ours = potential(model, batch_of(atoms), stress=stress)
        theirs = mace_own(model.mace, atoms, stress)
        torch.testing.assert_close(ours.energy.reshape(-1), theirs["energy"].detach(), rtol=0, atol=1e-10)
        torch.testing.assert_close(ours.forces, theirs["forces"].detach(), rtol=0, atol=1e-10)
        if stress:
            torch.testing.assert_close(ours.stress, theirs["stress"].detach(), rtol=0, atol=1e-12)


def orthogonal(seed: int, reflect: bool) -> torch.Tensor:
    """A random rotation (QR of a Gaussian matrix), times -1 for an improper one."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    q = q if torch.det(q) > 0 else -q
    return -q if reflect else q


def assert_equivariant(model: torch.nn.Module, batch: Batch, reflect: bool, atol: float = 1e-12) -> None:
    """Positions and lattice vectors turned by hand: the same energies, forces turned, stress turned as R S R^T."""
    rotation = orthogonal(3, reflect)
    turned_batch = batch.clone()
    turned_batch.pos, turned_batch.cell = batch.pos @ rotation.T, batch.cell @ rotation.T
    plain, turned = potential(model, batch, stress=True), potential(model, turned_batch, stress=True)
    torch.testing.assert_close(turned.energy, plain.energy, rtol=0, atol=atol)
    torch.testing.assert_close(turned.forces, plain.forces @ rotation.T, rtol=0, atol=atol)
    torch.testing.assert_close(turned.stress, rotation @ plain.stress @ rotation.T, rtol=0, atol=atol)


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "rotation-reflection"])
def test_mace_is_exactly_e3_equivariant_by_hand(reflect):
    assert_equivariant(make_model(), batch_of(crystals()), reflect)


def test_lora_trains_mace_through_the_potential_task_and_keeps_e3_exact():
    atoms = crystals()
    graphs = from_atoms(atoms, dtype=torch.float64).graphs
    model = make_model()
    before = potential(model, Batch.from_data_list(graphs)).energy.detach()
    strategy = make_strategy("lora", model, rank=4)
    assert any(isinstance(m, IrrepsAdapter) for m in model.modules())
    trainer = Trainer(model, "potential", strategy=strategy, groups=[O3()], max_epochs=3, lr=1e-2, progress=False)
    trainer.fit(DataLoader(graphs, batch_size=3))
    after = potential(trainer.model, Batch.from_data_list(graphs)).energy.detach()
    assert (after - before).abs().max() > 1e-4  # the adapters moved the model
    assert_equivariant(trainer.model, batch_of(atoms), reflect=True)
    forces = Forces(trainer.model)
    error = equivariance_error(forces, batch_of(atoms), O3(), forces.spec, n_samples=4)
    assert float(error.max()) < 1e-12
    assert trainer.evaluate(DataLoader(graphs, batch_size=3))["equivariance_error"] < 1e-12


def test_the_energy_shift_protocol_moves_mace_s_atomic_energies():
    model = make_model()
    assert isinstance(model, EnergyShift) and model.energy_shift() == {z: -1.0 - i for i, z in enumerate(ELEMENTS)}
    batch = batch_of(crystals())
    before = model(batch).detach()
    model.add_energy_shift({29: 0.5, 79: -0.25})
    # atoms of each element per structure, counted by hand
    counts = torch.tensor([[float((a.numbers == z).sum()) for z in (29, 79)] for a in crystals()], dtype=torch.float64)
    expected = counts @ torch.tensor([[0.5], [-0.25]], dtype=torch.float64)
    torch.testing.assert_close(model(batch).detach() - before, expected, rtol=0, atol=1e-12)
    e0s = {int(a.numbers[0]): a.info["REF_energy"] for a in isolated_atoms(("Cu", "Au"))}
    set_isolated_atom_energies(model, e0s)
    alone = isolated_atom_energies(model, sorted(e0s))
    assert all(abs(alone[z] - e0s[z]) < 1e-12 for z in e0s)
    fit = refit_energy_shift(model, from_atoms(crystals(), dtype=torch.float64).graphs)
    assert fit.mae_after < fit.mae_before


def test_a_mace_model_serves_as_an_ase_calculator_with_the_strain_derivative_stress():
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.rattle(0.05, seed=0)
    atoms.calc = Calculator(make_model(), device="cpu")
    stress = atoms.get_stress()
    numeric = atoms.calc.calculate_numerical_stress(atoms, d=1e-5)
    np.testing.assert_allclose(stress, numeric, atol=1e-8)
    forces = atoms.get_forces()
    numeric_forces = atoms.calc.calculate_numerical_forces(atoms, d=1e-5)
    np.testing.assert_allclose(forces, numeric_forces, atol=1e-8)


def test_a_wrapped_mace_model_saves_and_loads_with_its_builder(tmp_path):
    model = make_model(seed=1)
    strategy = make_strategy("lora", model, rank=2)
    with torch.no_grad():
        for module in strategy.model.modules():
            if isinstance(module, IrrepsAdapter):
                module.up.weight.normal_()
    save(strategy.model, tmp_path / "mace.pt")
    loaded = load(tmp_path / "mace.pt", builder=lambda **init: MACEEnergy(make_mace(seed=7)))
    batch = batch_of(crystals())
    torch.testing.assert_close(loaded(batch), strategy.model(batch), rtol=0, atol=1e-12)


def test_an_element_the_model_does_not_know_is_one_clear_error():
    iron = bulk("Fe", "bcc", a=2.87, cubic=True)
    with pytest.raises(
        ValueError, match=r"z: expected atomic numbers known to the model \[1, 6, 8, 29, 79\], got \[26\]"
    ):
        make_model()(batch_of([iron]))
