"""SevenNet checkpoints from the sevenn wheel: offline loading, energies and forces, batching, symmetry."""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from e3nn import o3
from rdkit import Chem
from rdkit.Chem import AllChem
from torch_geometric.data import Batch, Data

from geoadapt.checkpoints import load, save
from geoadapt.dtypes import default_dtype
from geoadapt.groups import E3, O3
from geoadapt.groups.irreps import haar_rotation
from geoadapt.metrics import equivariance_error
from geoadapt.models import build
from geoadapt.models.potential import Forces

needs_sevenn = pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")
REPO = Path(__file__).resolve().parents[2]


def molecule(smiles: str, seed: int = 0) -> Data:
    """``z`` and ``pos`` (Å) of an rdkit ETKDG conformer with hydrogens."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = 1 + seed
    AllChem.EmbedMolecule(mol, params)
    z = torch.tensor([a.GetAtomicNum() for a in mol.GetAtoms()])
    return Data(z=z, pos=torch.tensor(mol.GetConformer().GetPositions(), dtype=torch.float32))


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.fixture(scope="module")
def model():
    return build("sevennet_0")


@pytest.fixture(scope="module")
def ethanol() -> Data:
    return molecule("CCO")


@pytest.fixture(scope="module")
def pair() -> list[Data]:
    return [molecule("CCO"), molecule("O=CN", seed=1)]


def test_import_needs_no_sevenn():
    # The library imports, and sevenn stays unimported, until a SevenNet model is built.
    code = "import sys, geoadapt, geoadapt.models, geoadapt.data.potentials; print('sevenn' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip() == "False"


def test_missing_sevenn_names_the_extra(monkeypatch):
    from geoadapt.models.sevennet import bundled_checkpoint

    monkeypatch.setitem(sys.modules, "sevenn", None)  # what an environment without the extra looks like
    with pytest.raises(ImportError, match=r"geoadapt\[sevennet\]"):
        bundled_checkpoint("sevennet_0")


@needs_sevenn
def test_loads_offline_without_any_network_access(tmp_path):
    script = tmp_path / "offline.py"
    script.write_text(
        textwrap.dedent(
            """
            import socket
            attempts = []
            class NoNetwork(socket.socket):
                def connect(self, *args):
                    attempts.append(args)
                    raise OSError("network access attempted")
                connect_ex = connect
            socket.socket = NoNetwork
            def no_connection(*args, **kwargs):
                attempts.append(args)
                raise OSError("network access attempted")
            socket.create_connection = no_connection
            socket.getaddrinfo = no_connection
            import torch
            from torch_geometric.data import Data
            from geoadapt.models import build
            model = build("sevennet_0")
            water = Data(z=torch.tensor([8, 1, 1]), pos=torch.tensor([[0.0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]]))
            energy = model(water)
            print("attempts", len(attempts), "energy", float(energy))
            """
        )
    )
    command = [sys.executable, str(script)]
    if shutil.which("unshare") and subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0:
        command = ["unshare", "-rn", *command]  # a network namespace with no interface at all
    env = {**os.environ, "PYTHONPATH": str(REPO), "HOME": str(tmp_path)}  # no ~/.cache/sevennet to fall back on
    out = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    words = out.stdout.split()
    assert words[:2] == ["attempts", "0"] and words[2] == "energy" and float(words[3]) < 0


@needs_sevenn
def test_names_not_bundled_are_refused_without_download(monkeypatch):
    import sevenn.util

    from geoadapt.models.sevennet import BUNDLED, bundled_checkpoint

    def forbidden(*args, **kwargs):
        raise AssertionError("a download or a name lookup was attempted")

    monkeypatch.setattr(sevenn.util, "download_checkpoint", forbidden)
    monkeypatch.setattr(sevenn.util, "pretrained_name_to_path", forbidden)
    monkeypatch.setattr(socket.socket, "connect", forbidden)
    for name in ("7net-omat", "sevennet_omni", "7net-0"):  # downloadable or sevenn-style names: refused
        with pytest.raises(ValueError, match=r"expected one bundled in the sevenn wheel .* never downloads"):
            bundled_checkpoint(name)
    with pytest.raises(ValueError, match="model name"):
        build("sevennet_omat")
    assert all(bundled_checkpoint(name).is_file() for name in BUNDLED)


@needs_sevenn
def test_matches_sevenn_calculator(model, ethanol):
    # sevenn's own route: ASE atoms, its neighbour list, forces from edge-vector gradients.
    from ase import Atoms
    from sevenn.calculator import SevenNetCalculator

    from geoadapt.models.sevennet import bundled_checkpoint

    calc = SevenNetCalculator(str(bundled_checkpoint("sevennet_0")), file_type="checkpoint", device="cpu")
    atoms = Atoms(numbers=ethanol.z.numpy(), positions=ethanol.pos.numpy())
    atoms.calc = calc
    with torch.no_grad():
        out = model.potential(ethanol)
    assert out.energy.shape == (1, 1) and out.forces.shape == (9, 3)
    assert float(out.energy) == pytest.approx(atoms.get_potential_energy(), rel=1e-6)
    assert torch.allclose(out.forces, torch.tensor(atoms.get_forces()), atol=2e-5)


@needs_sevenn
def test_batch_equals_one_molecule_at_a_time(model, pair):
    with torch.no_grad():
        joint = model.potential(Batch.from_data_list(pair))
        alone = [model.potential(g) for g in pair]
    assert joint.energy.shape == (2, 1) and joint.forces.shape == (sum(g.num_nodes for g in pair), 3)
    assert torch.allclose(joint.energy, torch.cat([a.energy for a in alone]), rtol=1e-6, atol=1e-5)
    assert torch.allclose(joint.forces, torch.cat([a.forces for a in alone]), atol=1e-5)
    assert torch.equal(model(Batch.from_data_list(pair)), joint.energy)


@needs_sevenn
def test_forces_are_minus_the_finite_difference_gradient():
    water = molecule("O")
    with default_dtype(torch.float64):  # builds in float64 where sevenn alone cannot
        model = build("sevennet_0")
    assert model.dtype == torch.float64
    pos = water.pos.double()
    forces = model.forces(Data(z=water.z, pos=pos))
    h = 1e-4
    for atom in range(3):
        for axis in range(3):
            step = torch.zeros_like(pos)
            step[atom, axis] = h
            up, down = model(Data(z=water.z, pos=pos + step)), model(Data(z=water.z, pos=pos - step))
            assert float(-(up - down) / (2 * h)) == pytest.approx(float(forces[atom, axis]), abs=1e-5)
    # the same model is exactly SE(3)-equivariant in float64 (float64 Clebsch-Gordan constants)
    R, t = o3.rand_matrix(dtype=torch.float64), torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    moved = model.potential(Data(z=water.z, pos=pos @ R.T + t))
    assert relative(moved.forces, forces @ R.T) < 1e-10


@needs_sevenn
def test_rotations_and_translations_keep_energy_and_rotate_forces(model, pair):
    batch = Batch.from_data_list(pair)
    generator = torch.Generator().manual_seed(0)
    R = haar_rotation(1, generator, dtype=torch.float32)[0]
    t = torch.randn(3, generator=generator)
    with torch.no_grad():
        out = model.potential(batch)
        moved = batch.clone()
        moved.pos = batch.pos @ R.T + t
        out_moved = model.potential(moved)
    assert relative(out_moved.energy, out.energy) < 1e-5
    assert relative(out_moved.forces, out.forces @ R.T) < 1e-4
    forces = Forces(model)
    assert forces.spec.output_level == "node" and str(forces.spec.output) == "1x1o"
    error = equivariance_error(forces, batch, E3(proper=True), forces.spec, n_samples=4, generator=generator)
    assert error.shape == (4, 2) and float(error.max()) < 1e-4


@needs_sevenn
def test_mirror_images_break_the_forces(model, pair):
    batch = Batch.from_data_list(pair)
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    with torch.no_grad():
        out = model.potential(batch)
        moved = batch.clone()
        moved.pos = batch.pos @ mirror.T
        out_moved = model.potential(moved)
    assert relative(out_moved.forces, out.forces @ mirror.T) > 1e-3  # is_parity=False: not a symmetry
    assert model.symmetry == "Permutation x SE3"
    forces = Forces(model)
    error = equivariance_error(
        forces, batch, O3(), forces.spec, n_samples=8, generator=torch.Generator().manual_seed(1)
    )
    assert float(error.max()) > 1e-3


@needs_sevenn
def test_constants_frozen_by_the_checkpoint_stay_frozen_and_listed(model, pair):
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert set(model.frozen_parameter_names) == frozen
    assert {"net.rescale_atomic_energy.shift", "net.rescale_atomic_energy.scale"} <= frozen
    assert any(n.endswith("convolution.denominator") for n in frozen)
    adapted = copy.deepcopy(model)
    labelled = []
    for g in pair:
        g = g.clone()
        with torch.no_grad():
            g.energy = model(g) + 1.0
        labelled.append(g)
    from geoadapt.models.sevennet import refit_energy_shift

    refit_energy_shift(adapted, labelled)
    assert {n for n, p in adapted.named_parameters() if not p.requires_grad} == frozen


@needs_sevenn
def test_refit_energy_shift_recovers_planted_per_element_offsets(model):
    from geoadapt.models.sevennet import refit_energy_shift

    offsets = {1: 0.25, 6: -1.5, 7: 0.75, 8: 2.0}  # eV per atom of each element
    graphs = []
    for i, smiles in enumerate(["O", "C", "N", "CO", "CCO", "CN", "O=CN", "CC(=O)O"]):
        g = molecule(smiles, seed=i)
        with torch.no_grad():
            g.energy = model(g).double() + sum(offsets[int(z)] for z in g.z)
        graphs.append(g)
    adapted = copy.deepcopy(model)
    fit = refit_energy_shift(adapted, graphs)
    assert fit.rank == 4 and fit.mae_before > 0.1 and fit.mae_after < 1e-5
    assert fit.change == pytest.approx(offsets, abs=1e-5)
    with torch.no_grad():
        refitted = torch.cat([adapted(g) for g in graphs]).reshape(-1)
    assert torch.allclose(refitted.double(), torch.cat([g.energy.reshape(-1) for g in graphs]), atol=2e-4)
    with pytest.raises(ValueError, match="'energy' field"):
        refit_energy_shift(adapted, [molecule("O")])


@needs_sevenn
def test_checkpoint_round_trip_keeps_a_refitted_shift(model, pair, tmp_path):
    from geoadapt.models.sevennet import refit_energy_shift

    adapted = copy.deepcopy(model)
    labelled = [g.clone() for g in pair]
    for g, energy in zip(labelled, (-3.0, -5.0)):
        g.energy = torch.tensor([[energy]])
    refit_energy_shift(adapted, labelled)
    path = save(adapted, tmp_path / "sevennet.pt")
    loaded = load(path)
    batch = Batch.from_data_list(pair)
    with torch.no_grad():
        assert torch.equal(loaded(batch), adapted(batch))
        assert not torch.allclose(loaded(batch), model(batch))
    assert loaded.frozen_parameter_names == model.frozen_parameter_names


@needs_sevenn
def test_unknown_elements_and_bad_options_are_named(model):
    with pytest.raises(ValueError, match=r"z: expected atomic numbers known to sevennet_0 .*got \[100\]"):
        model(Data(z=torch.tensor([100, 1]), pos=torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="dtype: expected one of"):
        build("sevennet_0", dtype="float16")


@needs_sevenn
def test_multi_fidelity_modal_and_l3i5(pair):
    with pytest.raises(ValueError, match=r"sevennet_mf_0 modal: expected one of \['PBE', 'R2SCAN'\], got None"):
        build("sevennet_mf_0")
    batch = Batch.from_data_list(pair)
    energies = {}
    for modal in ("PBE", "R2SCAN"):
        model = build("sevennet_mf_0", modal=modal)
        with torch.no_grad():
            energies[modal] = model(batch)
            alone = torch.cat([model(g) for g in pair])
        assert torch.allclose(energies[modal], alone, rtol=1e-6, atol=1e-5)  # the modal is set per graph
    assert not torch.allclose(energies["PBE"], energies["R2SCAN"], atol=1e-2)
    l3i5 = build("sevennet_l3i5")
    with torch.no_grad():
        out = l3i5.potential(batch)
    assert out.energy.shape == (2, 1) and out.forces.shape == (batch.num_nodes, 3) and l3i5.cutoff == 5.0
