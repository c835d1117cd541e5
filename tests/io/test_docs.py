"""Every ```python block of docs/potentials.md runs as written, on its own, and prints what its comments say."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "potentials.md"
BLOCKS = re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), flags=re.M | re.S)
needs_sevenn = pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")


def run(code: str, folder: Path, monkeypatch) -> list[str]:
    monkeypatch.chdir(folder)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(PAGE), "exec"), {})
    return printed.getvalue().splitlines()


def test_the_page_has_its_three_examples():
    assert len(BLOCKS) == 3


def test_reading_block(tmp_path, monkeypatch):
    lines = run(BLOCKS[0], tmp_path, monkeypatch)
    assert lines[0] == "train: 3 graphs with energies and forces and stresses, 0 failed, E0s of elements [29]"
    assert lines[1] == "{29: 3.51}"
    assert lines[2] == (
        "Data(pos=[4, 3], z=[4], cell=[1, 3, 3], pbc=[1, 3], energy=[1, 1], y=[1, 1], force=[4, 3], stress=[1, 3, 3])"
    )


@needs_sevenn
def test_calculator_block_relaxes_and_conserves_energy(tmp_path, monkeypatch):
    lines = run(BLOCKS[1], tmp_path, monkeypatch)
    assert lines[0] == "train: 2 graphs with energies and forces and stresses, 0 failed"
    assert float(lines[2]) < 0.05 and float(lines[3]) < 1e-4


@needs_sevenn
def test_energy_shift_block(tmp_path, monkeypatch):
    before, _, after, _ = run(BLOCKS[2], tmp_path, monkeypatch)[0].split()
    assert float(before) > 30 and float(after) < float(before) / 5
