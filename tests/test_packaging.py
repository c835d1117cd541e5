"""The built wheel is complete: an installed geoadapt finds its dataset cards."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARDS = sorted(p.name for p in (ROOT / "geoadapt" / "datasets").glob("*.yaml"))

CHECK = """
import sys
import geoadapt
from geoadapt.data import card_names, load, read_card
assert geoadapt.__file__.startswith(sys.argv[1]), geoadapt.__file__  # the unpacked wheel, not the checkout
print(",".join(card_names()))
print(read_card("esol")["target_columns"][0])
print(len(load("digits", split="train")))
"""


def test_the_wheel_ships_the_dataset_cards(tmp_path):
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "geoadapt", source / "geoadapt", ignore=shutil.ignore_patterns("__pycache__"))
    build = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*build, "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("geoadapt-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = sorted(Path(n).name for n in archive.namelist() if n.startswith("geoadapt/datasets/"))
        assert shipped == CARDS and len(CARDS) >= 16
        archive.extractall(tmp_path / "site")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(tmp_path / "site")
    proc = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path / "site")], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    names, target, digits = proc.stdout.strip().splitlines()
    assert names.split(",") == [c[: -len(".yaml")] for c in CARDS]
    assert target == "measured log solubility in mols per litre" and int(digits) > 1000
