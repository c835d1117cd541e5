"""Every ```python block of docs/potentials.md runs as written, on its own, and prints what its comments say; its
command-line block runs on the files its first example writes. The MACE block runs in the MACE environment
(tests_mace/test_docs.py)."""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import re
import shlex
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "potentials.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), flags=re.M | re.S)
MACE = [b for b in BLOCKS if "from mace" in b]  # run in .venv-mace: mace-torch and sevenn need other e3nn releases
HERE = [b for b in BLOCKS if b not in MACE]
COMMANDS = re.findall(r"^```bash\n(.*?)^```", PAGE.read_text(), flags=re.M | re.S)
needs_sevenn = pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")


def block(marker: str) -> str:
    (found,) = [b for b in HERE if marker in b]
    return found


def run(code: str, folder: Path, monkeypatch) -> list[str]:
    monkeypatch.chdir(folder)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(PAGE), "exec"), {})
    return printed.getvalue().splitlines()


def test_the_page_has_its_examples():
    assert len(HERE) == 5 and len(MACE) == 1 and len(COMMANDS) == 1


def test_reading_block(tmp_path, monkeypatch):
    lines = run(block("def labelled(atoms)"), tmp_path, monkeypatch)
    assert lines[0] == "train: 3 graphs with energies and forces and stresses, 0 failed, E0s of elements [29]"
    assert lines[1] == "{29: 3.51}"
    assert lines[2] == (
        "Data(pos=[4, 3], z=[4], cell=[1, 3, 3], pbc=[1, 3], energy=[1, 1], y=[1, 1], force=[4, 3], stress=[1, 3, 3])"
    )


@needs_sevenn
def test_the_command_line_block_adapts_and_evaluates_the_files_the_page_writes(tmp_path, monkeypatch, capsys):
    from geoadapt.cli import main

    assert run(block('ase.io.write("train.extxyz"'), tmp_path, monkeypatch) == ["14"]
    quick = {"adapt": ["epochs=1", "replay_structures=8", "progress=false"], "evaluate": ["forgetting_structures=8"]}
    outputs = []
    for line in COMMANDS[0].strip().splitlines():
        argv = shlex.split(line)[1:]
        code = main([*argv, *quick[argv[0]], *(["samples=2"] if argv[0] == "evaluate" else [])])
        out, err = capsys.readouterr()
        assert code == 0, err
        outputs.append(out)
    assert "energy reference: the isolated-atom energies (E0s) of elements [29, 79]" in outputs[0]
    assert "replay: 8 source-like structures" in outputs[0] and (tmp_path / "runs" / "emt-lora" / "model.pt").is_file()
    assert "| source-like crystals labelled by sevennet_0 | 8" in outputs[1] and "| test.extxyz" in outputs[1]


@needs_sevenn
def test_the_python_path_adapts_with_replay_and_runs_dynamics(tmp_path, monkeypatch):
    lines = run(block("ReplayLoader("), tmp_path, monkeypatch)
    errors, forgotten = ast.literal_eval(lines[0]), ast.literal_eval(lines[1])
    assert set(errors) == {"energy_mae", "force_mae", "force_rmse", "stress_mae"} and 0 < errors["force_mae"] < 500
    assert 0 < forgotten["force_mae"] < errors["force_mae"]  # moved a little on other crystals, less than the target
    assert float(lines[2]) < 1e-4


@needs_sevenn
def test_calculator_block_relaxes_and_conserves_energy(tmp_path, monkeypatch):
    lines = run(block("BFGS(atoms"), tmp_path, monkeypatch)
    assert lines[0] == "train: 2 graphs with energies and forces and stresses, 0 failed"
    assert float(lines[2]) < 0.05 and float(lines[3]) < 1e-4


@needs_sevenn
def test_energy_shift_block(tmp_path, monkeypatch):
    before, _, after, _ = run(block("set_isolated_atom_energies(model"), tmp_path, monkeypatch)[0].split()
    assert float(before) > 30 and float(after) < float(before) / 5
