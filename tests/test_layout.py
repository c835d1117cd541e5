"""The package keeps its shape: small modules and functions (the import layers: tests/test_layers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import code_size  # noqa: E402


def test_modules_and_functions_stay_within_their_limits():
    modules, functions = code_size.measure()
    assert modules and functions
    assert code_size.over_limits(modules, functions) == []


def test_the_size_check_can_fail(tmp_path):
    big = tmp_path / "pkg"
    big.mkdir()
    body = "\n".join(f"    x{i} = {i}" for i in range(code_size.FUNCTION_LIMIT + 1))
    (big / "m.py").write_text(f'def f():\n    """Doc."""\n{body}\n')
    modules, functions = code_size.measure(big)
    assert [s.lines for s in functions] == [code_size.FUNCTION_LIMIT + 2]  # def + body, docstring aside
    assert len(code_size.over_limits(modules, functions)) == 1
