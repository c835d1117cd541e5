"""``geoadapt bench``: run a benchmark script of the source checkout's ``benchmarks/`` folder."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

from geoadapt.errors import ConfigError

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"  # beside the package, in a source checkout


def run(config: dict[str, Any]) -> None:
    """Run ``benchmarks/<name>.py``'s ``main`` with ``--quick`` and ``--out`` as set."""
    script = BENCHMARKS / f"{config['name']}.py"
    if not BENCHMARKS.is_dir():
        raise ConfigError(
            f"bench: expected the benchmarks/ folder of a source checkout beside the package, got none in "
            f"{BENCHMARKS.parent} (the benchmark scripts ship with the repository, not the wheel)"
        )
    if not script.is_file():
        names = sorted(p.stem for p in BENCHMARKS.glob("[!_]*.py"))
        raise ConfigError(f"bench name: expected one of {names}, got {config['name']!r}")
    module = runpy.run_path(str(script))
    module["main"](["--quick"] * config["quick"] + (["--out", str(config["out"])] if config["out"] else []))
