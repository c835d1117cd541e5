"""extxyz (and lists of ASE Atoms) into labelled graphs: labels, E0s, stresses, and one-line errors."""

from __future__ import annotations

import logging

import ase.io
import numpy as np
import pytest
import torch
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from torch_geometric.data import Batch

from geoadapt.io import Keys, from_atoms, read
from tests.io.frames import crystals, isolated_atoms, label, slab


@pytest.fixture
def train_file(tmp_path):
    path = tmp_path / "train.extxyz"
    ase.io.write(path, isolated_atoms()[:1] + crystals() + isolated_atoms()[1:])
    return path


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_labels_cells_and_e0s_are_read_as_emt_wrote_them(train_file):
    data = read(train_file, dtype=torch.float64)
    frames = crystals()
    assert data.name == "train" and len(data) == len(frames) and "stress" in data.spec.fields
    assert data.e0s == pytest.approx(
        {29: isolated_atoms()[0].info["REF_energy"], 79: isolated_atoms()[1].info["REF_energy"]}
    )
    written = [a for a in ase.io.read(train_file, ":") if "config_type" not in a.info]  # ASE's own reading
    for graph, atoms, original in zip(data, written, frames):
        n = len(atoms)
        assert graph.z.tolist() == atoms.numbers.tolist() and graph.pos.shape == (n, 3)
        assert graph.cell.shape == (1, 3, 3) and graph.pbc.shape == (1, 3) and graph.pbc.dtype == torch.bool
        assert graph.energy.shape == (1, 1) and graph.force.shape == (n, 3) and graph.stress.shape == (1, 3, 3)
        assert torch.equal(graph.y, graph.energy) and graph.pbc.all()
        np.testing.assert_array_equal(graph.pos.numpy(), atoms.positions)
        np.testing.assert_array_equal(graph.cell[0].numpy(), atoms.cell.array)
        np.testing.assert_array_equal(graph.force.numpy(), atoms.arrays["REF_forces"])
        assert float(graph.energy) == atoms.info["REF_energy"] == original.info["REF_energy"]
        original.calc = EMT()  # the file keeps forces to 1e-8 eV/Å, energies and stresses in full
        np.testing.assert_allclose(graph.force.numpy(), original.get_forces(), atol=1e-7)
        np.testing.assert_allclose(graph.stress[0].numpy(), original.get_stress(voigt=False), atol=1e-12)
    batch = Batch.from_data_list(data.graphs)
    assert batch.cell.shape == (len(frames), 3, 3) and batch.stress.shape == (len(frames), 3, 3)
    assert read(train_file).graphs[0].pos.dtype == torch.float32  # float32 unless asked


def test_stress_as_3x3_or_nine_values_and_custom_keys():
    frames = [label(a, prefix="DFT_") for a in crystals()[:2]]
    frames[0].info["DFT_stress"] = frames[0].info["DFT_stress"].copy()
    voigt = frames[1].info["DFT_stress"]
    frames[1].info["DFT_stress"] = np.array(
        [[voigt[0], voigt[5], voigt[4]], [voigt[5], voigt[1], voigt[3]], [voigt[4], voigt[3], voigt[2]]]
    ).reshape(-1)
    keys = {"energy": "DFT_energy", "forces": "DFT_forces", "stress": "DFT_stress"}
    data = from_atoms(frames, keys=keys, dtype=torch.float64)
    assert torch.allclose(data[1].stress, data[1].stress.transpose(1, 2))
    assert data[1].stress[0, 0, 1] == pytest.approx(voigt[5]) and data[1].stress[0, 1, 2] == pytest.approx(voigt[3])
    assert from_atoms(frames, keys=Keys(**keys), stress=False).spec.fields.keys() == {"pos", "force"}
    with pytest.raises(ValueError, match=r"keys: expected names among .* got \['forcez'\]"):
        from_atoms(frames, keys={"forcez": "x"})


def test_calculator_results_are_read_only_when_asked(tmp_path, caplog):
    frames = crystals()[:2]
    for atoms in frames:
        atoms.calc = SinglePointCalculator(
            atoms,
            energy=atoms.info.pop("REF_energy"),
            forces=atoms.arrays.pop("REF_forces"),
            stress=atoms.info.pop("REF_stress"),
        )
    path = tmp_path / "predictions.extxyz"
    ase.io.write(path, frames)  # written as plain energy/forces/stress: ASE reads them back into a calculator
    with pytest.raises(ValueError) as err:
        read(path)
    assert one_line(err) == (
        f"{path} frame 0 'REF_energy': missing; the frame has calculator results ['energy', 'forces', 'stress']: "
        "read them with keys='calculator'"
    )
    with caplog.at_level(logging.INFO, logger="geoadapt"):
        data = read(path, keys="calculator", dtype=torch.float64)
    assert "calculator results (keys='calculator')" in caplog.text and str(path) in caplog.text
    assert float(data[0].energy) == pytest.approx(frames[0].get_potential_energy())
    np.testing.assert_allclose(data[1].force.numpy(), frames[1].get_forces(), atol=1e-12)


def test_slabs_and_crystals_mix_without_stress(tmp_path):
    path = tmp_path / "mixed.extxyz"
    ase.io.write(path, crystals() + [slab()])
    with pytest.raises(ValueError) as err:
        read(path)
    assert one_line(err) == (
        f"{path} frame 4 'REF_stress': missing while frame 0 has one; pass stress=False to leave stresses out"
    )
    data = read(path, stress=False)
    assert len(data) == 5 and "stress" not in data[4] and data[4].pbc.tolist() == [[True, True, False]]
    stressed = slab()
    stressed.info["REF_stress"] = np.zeros(6)
    with pytest.raises(ValueError, match=r"atoms frame 0 'REF_stress': expected a stress only on a frame periodic"):
        from_atoms([stressed])


def broken(kind: str):
    frames = crystals()
    if kind == "missing forces":
        del frames[2].arrays["REF_forces"]
    elif kind == "stress of 5 values":
        frames[2].info["REF_stress"] = np.zeros(5)
    elif kind == "NaN energy":
        frames[2].info["REF_energy"] = float("nan")
    elif kind == "two-atom isolated atom":
        frames[2].info["config_type"] = "IsolatedAtom"
    return frames


@pytest.mark.parametrize(
    "kind, message",
    [
        ("missing forces", "frame 2 'REF_forces': missing (has ['numbers', 'positions'])"),
        ("stress of 5 values", "frame 2 'REF_stress': expected 6 (Voigt: xx yy zz yz xz xy), 9 or 3x3 values in"),
        ("NaN energy", "frame 2 'REF_energy': expected one finite energy in eV, got nan"),
        ("two-atom isolated atom", "frame 2 'config_type': expected one atom in an IsolatedAtom frame, got 4"),
    ],
)
def test_bad_frames_name_the_file_frame_and_key(tmp_path, kind, message):
    path = tmp_path / "bad.extxyz"
    ase.io.write(path, broken(kind))
    with pytest.raises(ValueError) as err:
        read(path)
    assert one_line(err).startswith(f"{path} {message}")


def test_unknown_elements_empty_and_missing_files(tmp_path, train_file):
    class Model:
        elements = [29, 47]

    with pytest.raises(ValueError) as err:
        read(train_file, elements=Model())
    assert one_line(err) == f"{train_file} frame 2 'numbers': expected elements known to the model [29, 47], got [79]"
    empty = tmp_path / "empty.extxyz"
    empty.write_text("")
    with pytest.raises(ValueError, match=f"{empty}: expected at least one frame, got an empty file"):
        read(empty)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path / 'nope.extxyz'}: no such file"):
        read(tmp_path / "nope.extxyz")
    garbled = tmp_path / "garbled.extxyz"
    garbled.write_text('3\nLattice="1 0 0 0 1 0 0 0 1"\nCu 0 0 0\n')
    with pytest.raises(ValueError) as err:
        read(garbled)
    assert one_line(err).startswith(f"{garbled}: ASE could not read it (")
    with pytest.raises(TypeError, match=r"atoms frame 1: expected an ase.Atoms, got dict"):
        from_atoms([crystals()[0], {"numbers": [29]}])
    with pytest.raises(ValueError, match=r"E0 of element 29, got"):
        twice = isolated_atoms()[:1] * 2
        twice[1] = twice[1].copy()
        twice[1].info["REF_energy"] += 1.0
        from_atoms(twice + crystals())
