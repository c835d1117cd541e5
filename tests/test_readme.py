"""Every code block of the README runs as written (in a quick form where it trains), and prints sensible numbers."""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from geoadapt.cli import main

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def code_blocks(language: str) -> dict[str, list[str]]:
    """``{section heading: [code, ...]}`` for the README's fenced blocks in ``language``."""
    found: dict[str, list[str]] = {}
    for section in re.split(r"^#{2,3} ", README, flags=re.M)[1:]:
        heading = section.splitlines()[0].strip()
        for code in re.findall(rf"^```{language}\n(.*?)^```", section, flags=re.M | re.S):
            found.setdefault(heading, []).append(code)
    return found


PYTHON, BASH = code_blocks("python"), code_blocks("bash")
# Shorter training for the test suite; every replacement must still match the README.
QUICK = {
    "Adapting a model while keeping its symmetry": [
        ('epochs=20, augment="so3")', 'epochs=1, augment="so3", limit=300)'),
        ('split="train")', 'split="train", limit=500)'),
        ('split="val")', 'split="val", limit=500)'),
        ("max_epochs=30", "max_epochs=5"),
    ]
}
# Overrides appended to each command line (later keys win), to keep runs small.
QUICK_COMMANDS = {
    "pretrain": ["limit=60", "epochs=1", "progress=false"],
    "adapt": ["limit=60", "epochs=1", "progress=false"],
    "evaluate": ["limit=40"],
}


def run_python(code: str, heading: str, folder: Path, monkeypatch) -> tuple[dict, str]:
    for old, new in QUICK.get(heading, []):
        assert old in code, f"README section {heading!r} no longer contains {old!r}: update QUICK"
        code = code.replace(old, new)
    monkeypatch.chdir(folder)
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, f"README.md ({heading})", "exec"), namespace)
    return namespace, printed.getvalue()


def test_every_block_is_tested():
    assert set(PYTHON) == {
        "Quick start: measure the equivariance of a model",
        "The shared group API",
        "Adapting a model while keeping its symmetry",
    }
    assert set(BASH) == {"The two commands", "Command line"}


def test_the_two_commands_are_make_targets():
    # `make test` is this suite; `make demo` runs geoadapt.demo, which tests/test_benchmarks.py runs quick.
    lines = [shlex.split(line, comments=True) for line in BASH["The two commands"][0].splitlines()]
    assert lines == [["make", "demo"], ["make", "test"]]
    makefile = (ROOT / "Makefile").read_text()
    assert "\ndemo: " in makefile and "-m geoadapt.demo" in makefile and "\ntest: " in makefile


def test_quick_start(tmp_path, monkeypatch):
    import torch

    namespace, printed = run_python(
        PYTHON["Quick start: measure the equivariance of a model"][0], "", tmp_path, monkeypatch
    )
    err, score = namespace["err"], float(printed.split()[-1])
    assert err.shape == (8, 3) and printed.startswith("torch.Size([8, 3])")
    assert 0 <= float(err.max()) < 1e-3  # e3nn_gnn is E(3)-equivariant by construction (float32 noise)
    assert 0.999 < score <= 1.0 and torch.isfinite(err).all()


def test_spec_example(tmp_path, monkeypatch):
    namespace, _ = run_python(PYTHON["The shared group API"][0], "", tmp_path, monkeypatch)
    spec = namespace["spec"]
    assert set(spec.fields) == {"pos", "x", "force"} and spec.positions == ("pos",)


def test_adapting_snippet_learns_the_target_task(tmp_path, monkeypatch):
    heading = "Adapting a model while keeping its symmetry"
    _, printed = run_python(PYTHON[heading][0], heading, tmp_path, monkeypatch)
    metrics = ast.literal_eval(printed.strip().splitlines()[-1])
    assert metrics["r2"] > 0.3, metrics  # ESOL on its own target scale (the source's scale gave R² < -10)
    assert 0 < metrics["rmse"] < 2.0 and metrics["equivariance_error/Permutation()"] < 1e-5


def run_commands(block: str, tmp_path: Path, capsys) -> list[tuple[list[str], str]]:
    outputs = []
    for line in block.splitlines():
        argv = shlex.split(line, comments=True)
        assert argv[0] == "geoadapt", line
        argv = [*argv[1:], *QUICK_COMMANDS.get(argv[1], [])]
        if argv[0] == "bench":
            argv.append(f"out={tmp_path / 'results'}")
        if argv == ["--help"]:
            with pytest.raises(SystemExit) as exit_info:
                main(argv)
            assert exit_info.value.code == 0
        else:
            code = main(argv)
            assert code == 0, (line, capsys.readouterr().err)
        outputs.append((argv, capsys.readouterr().out))
    return outputs


def test_command_line_block_runs_top_to_bottom(tmp_path, monkeypatch, capsys):
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    outputs = dict((argv[0], out) for argv, out in run_commands(BASH["Command line"][0], tmp_path, capsys))
    assert "rdkit_nci5k" in outputs["datasets"] and "| yes" in outputs["datasets"]
    assert (tmp_path / "runs" / "adapt-chembl-constrained" / "summary.json").is_file()
    assert "SO3" in outputs["evaluate"] and "Permutation" in outputs["evaluate"]
    assert "pretrain-naive-nci5k" in outputs["report"] and "adapt-chembl-constrained" in outputs["report"]
    assert (tmp_path / "results" / "equivariance_eval.json").is_file()


def test_your_own_molecules_block(tmp_path, monkeypatch, capsys):
    import csv
    import os

    source = Path(os.environ["GEOADAPT_DATA"]) / "MoleculeNet" / "esol" / "raw" / "delaney-processed.csv"
    with source.open() as handle:
        rows = list(csv.DictReader(handle))[:60]
    target = "measured log solubility in mols per litre"
    (tmp_path / "mols.csv").write_text("smiles,logS\n" + "".join(f"{r['smiles']},{r[target]}\n" for r in rows))
    median = sorted(float(r[target]) for r in rows)[len(rows) // 2]
    (tmp_path / "assay.csv").write_text(
        "smiles,active\n" + "".join(f"{r['smiles']},{int(float(r[target]) > median)}\n" for r in rows)
    )
    monkeypatch.setenv("GEOADAPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    block = next(b for b in BASH["Command line"][1:] if "data=mols.csv" in b)
    run_commands(block, tmp_path, capsys)
    assert (tmp_path / "runs" / "mine" / "model.pt").is_file()
    assert "val_accuracy" in (tmp_path / "runs" / "assay" / "summary.json").read_text()
