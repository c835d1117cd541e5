"""Helpers shared by the benchmark scripts: timing, JSON output, the rdkit molecule sample."""

from __future__ import annotations

import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parents[1] / "results"


def median_time(fn: Callable[[], object], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` runs after ``warmup`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> dict:
    """Where the numbers were measured: cores, torch threads, versions, device."""
    import os

    cuda = torch.cuda.is_available()
    return {
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "processor": platform.processor() or platform.machine(),
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
    }


def save_json(name: str, payload: dict, out_dir: Path | None = None) -> Path:
    """Write ``payload`` (plus machine info) to ``results/<name>.json``."""
    out_dir = out_dir or RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **payload}, indent=2))
    return path


def output_dir(args) -> Path:
    """``--out`` if given; else ``results/`` (``results/quick/`` for ``--quick`` runs, which git ignores)."""
    path = Path(args.out) if args.out is not None else RESULTS / "quick" if args.quick else RESULTS
    path.mkdir(parents=True, exist_ok=True)
    return path
