"""``adapt task=potential`` and ``evaluate`` on extxyz files: label keys, validation files and splits, E0s, replay,
forgetting, and one-line errors for bad input (with nothing trained and no run folder left)."""

from __future__ import annotations

import json

import ase.io
import pytest
from ase.calculators.singlepoint import SinglePointCalculator

from geoadapt.checkpoints import load, save
from geoadapt.cli import main
from geoadapt.data.emt import emt_structures, isolated_atoms
from geoadapt.models import wrap
from tests.models.pair_potential import LennardJones

QUICK = ["epochs=1", "batch_size=4", "groups=[se3]", "progress=false"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture()
def files(tmp_path, monkeypatch):
    """train.extxyz (Cu and Au structures and their IsolatedAtom frames), val.extxyz, test.extxyz and a pair
    potential checkpoint that knows Cu and Au, in the working folder."""
    monkeypatch.chdir(tmp_path)
    metals = ("Cu", "Au")
    ase.io.write("train.extxyz", emt_structures(8, seed=0, elements=metals) + isolated_atoms(metals))
    ase.io.write("val.extxyz", emt_structures(3, seed=1, elements=metals))
    ase.io.write("test.extxyz", emt_structures(3, seed=2, elements=metals))
    model = wrap(LennardJones(), spec=LennardJones.spec, symmetry="Permutation x E3")
    save(model, "lj.pt")
    return tmp_path


def test_adapt_on_extxyz_with_a_validation_file_the_isolated_atom_e0s_and_replay(files, capsys):
    argv = ["adapt", "checkpoint=lj.pt", "data=train.extxyz", "val_data=val.extxyz", "task=potential"]
    code, out, err = run(capsys, *argv, "replay_ratio=0.25", "replay_structures=4", "out=runs/lj", *QUICK)
    assert code == 0, err
    assert "energy reference: the isolated-atom energies (E0s) of elements [29, 79] from the data" in out
    assert "replay: 4 source-like structures labelled by the model, 25% of every training step" in out
    summary = json.loads((files / "runs" / "lj" / "summary.json").read_text())
    assert summary["val_energy_mae"] > 0 and summary["epochs"] == 1
    e0s = {int(a.numbers[0]): a.info["REF_energy"] for a in isolated_atoms(("Cu", "Au"))}
    shift = load(files / "runs" / "lj" / "model.pt").energy_shift()
    assert shift[29] == pytest.approx(e0s[29]) and shift[79] == pytest.approx(e0s[79])  # one atom alone: its E0


def test_adapt_splits_off_val_fraction_and_refits_when_asked(files, capsys):
    argv = ["adapt", "checkpoint=lj.pt", "data=train.extxyz", "task=potential", "val_fraction=0.25", "e0s=refit"]
    code, out, err = run(capsys, *argv, "out=runs/split", *QUICK)
    assert code == 0, err
    assert "energy reference: refitted by least squares on the training data (elements [29, 79])" in out
    assert (files / "runs" / "split" / "model.pt").is_file()


def test_label_keys_and_calculator_results(files, capsys):
    frames = ase.io.read("train.extxyz", ":")
    for atoms in frames:  # the labels under other names
        atoms.info["DFT_energy"] = atoms.info.pop("REF_energy")
        atoms.arrays["DFT_forces"] = atoms.arrays.pop("REF_forces")
        atoms.info.pop("REF_stress", None)
    ase.io.write("dft.extxyz", frames)
    keys = ["energy_key=DFT_energy", "forces_key=DFT_forces", "stress=false", "e0s=keep"]
    code, _, err = run(
        capsys, "adapt", "checkpoint=lj.pt", "data=dft.extxyz", "task=potential", *keys, "out=runs/k", *QUICK
    )
    assert code == 0, err
    plain = ase.io.read("val.extxyz", ":")
    for atoms in plain:  # plain energy / forces columns: ASE keeps them as calculator results
        atoms.calc = SinglePointCalculator(atoms, energy=atoms.info["REF_energy"], forces=atoms.arrays["REF_forces"])
        atoms.info.clear()
        del atoms.arrays["REF_forces"]
    ase.io.write("calc.extxyz", plain)
    code, _, err = run(capsys, "evaluate", "checkpoint=lj.pt", "data=calc.extxyz", "groups=se3", "samples=2")
    assert code == 2 and "calc.extxyz frame 0 'REF_energy': missing" in err and "keys='calculator'" in err
    code, out, err = run(capsys, "evaluate", "checkpoint=lj.pt", "data=calc.extxyz", "keys=calculator", "--json")
    assert code == 0, err
    assert "labels read from the frames' calculator results" in err  # standard output is the JSON alone
    card = json.loads(out)
    assert card["errors"]["structures"] == 3 and "stress_mae" not in card["errors"]


def test_evaluate_reports_errors_and_forgetting_against_a_source(files, capsys):
    shifted = wrap(LennardJones(epsilon=0.35), spec=LennardJones.spec, symmetry="Permutation x E3")
    save(shifted, "moved.pt")
    argv = ["evaluate", "checkpoint=moved.pt", "data=test.extxyz", "groups=se3,o3", "samples=2"]
    code, out, err = run(capsys, *argv, "source=lj.pt", "forgetting_structures=6", "--json")
    assert code == 0, err
    card = json.loads(out)
    assert card["errors"]["structures"] == 3 and card["errors"]["stress_mae"] > 0
    assert card["forgetting"]["source"] == "lj.pt" and card["forgetting"]["structures"] == 6
    assert card["forgetting"]["force_mae"] > 1  # meV/Å: another epsilon moved the forces
    code, out, err = run(capsys, "evaluate", "checkpoint=lj.pt", "data=test.extxyz", "source=lj.pt", "samples=2")
    assert code == 0, err
    assert "| source-like crystals labelled by lj.pt | 32" in out and "| test.extxyz" in out
    row = next(line for line in out.splitlines() if line.startswith("| source-like"))
    assert [float(v) for v in row.split("|")[3:5]] == [0.0, 0.0]  # the source against its own labels


@pytest.mark.parametrize(
    "extra, message",
    [
        (["data=bad.extxyz"], "bad.extxyz frame 2 'REF_forces': missing"),
        (["data=train.extxyz", "val_data=missing.extxyz"], "missing.extxyz: no such file"),
        (["data=nickel.extxyz"], "nickel.extxyz frame 0 'numbers': expected elements known to the model [29, 79]"),
        (["data=train.extxyz", "e0s=average"], "e0s: expected one of ['auto', 'isolated', 'refit', 'keep']"),
        (["data=train.extxyz", "val_fraction=1.5"], "val_fraction: expected a share in (0, 1)"),
        (["data=train.extxyz", "replay_ratio=1"], "replay_ratio: expected a share of replay structures in [0, 1)"),
        (["data=train.extxyz", "keys=dft"], "keys: expected 'calculator' or no value"),
        (["data=val.extxyz", "e0s=isolated"], "e0s=isolated: expected an IsolatedAtom frame for every element"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_trains(files, capsys, extra, message):
    frames = ase.io.read("test.extxyz", ":")
    del frames[2].arrays["REF_forces"]
    ase.io.write("bad.extxyz", frames)
    ase.io.write("nickel.extxyz", emt_structures(2, seed=3, elements=("Ni",)))
    code, _, err = run(capsys, "adapt", "checkpoint=lj.pt", "task=potential", "out=runs/bad", *extra, *QUICK)
    assert code == 2 and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (files / "runs").exists()  # no run folder, no partial one


def test_a_file_of_structures_needs_task_potential(files, capsys):
    code, _, err = run(capsys, "adapt", "checkpoint=lj.pt", "data=train.extxyz", "out=runs/x", *QUICK)
    assert code == 2 and "task: expected task=potential for the file of structures train.extxyz, got None" in err


def test_limit_takes_the_first_structures_of_a_file(files, capsys):
    code, out, err = run(capsys, "evaluate", "checkpoint=lj.pt", "data=train.extxyz", "limit=2", "samples=2", "--json")
    assert code == 0, err
    assert json.loads(out)["errors"]["structures"] == 2
