"""Every tutorial runs end to end (quick mode)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("[a-z]_*.py"))


def test_there_are_six_tutorials():
    assert len(TUTORIALS) == 6


SLOW = {"f_foundation_potential"}  # SevenNet-0 trained twice: ~30 s on 2 cores


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.slow) if p.stem in SLOW else p for p in TUTORIALS],
    ids=lambda p: p.stem,
)
def test_tutorial_runs(path, monkeypatch, capsys):
    monkeypatch.setenv("GEOADAPT_QUICK", "1")
    runpy.run_path(str(path), run_name="__main__")
    assert capsys.readouterr().out.strip()  # it printed its results
