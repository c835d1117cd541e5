"""The import layering of pyproject.toml's import-linter contracts holds (lower layers never import higher ones)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(lint).exists():
        pytest.skip("import-linter is not installed (a dev dependency)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    for contract in ("Layers: each imports only", "Nothing imports the command line", "No import cycles"):
        assert contract in result.stdout
    assert ", 0 broken." in result.stdout
