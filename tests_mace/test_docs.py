"""The MACE block of docs/potentials.md runs as written and prints what its comments say (in the MACE environment)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[1] / "docs" / "potentials.md"


def test_the_mace_block_measures_exact_o3_before_and_after_lora(tmp_path, monkeypatch):
    (code,) = [b for b in re.findall(r"^```python\n(.*?)^```", PAGE.read_text(), flags=re.M | re.S) if "from mace" in b]
    monkeypatch.chdir(tmp_path)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(PAGE), "exec"), {})
    before, after = (float(line) for line in printed.getvalue().splitlines()[-2:])  # mace may print a note first
    assert before < 1e-12 and after < 1e-12
