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


def test_a_broken_layer_is_caught(tmp_path):
    """The check can fail: a copy of the package where groups import the metrics breaks the layers contract."""
    lint = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    shutil.copytree(ROOT / "geoadapt", tmp_path / "geoadapt", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    groups = tmp_path / "geoadapt" / "groups" / "__init__.py"
    groups.write_text(groups.read_text() + "\nimport geoadapt.metrics  # noqa\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([lint, "--no-cache"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "geoadapt.groups -> geoadapt.metrics" in result.stdout, result.stdout[-2000:]
