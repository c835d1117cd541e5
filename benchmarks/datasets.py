"""Dataset loading cost: conformer generation per 1000 molecules (cold, 1 and 2 workers) and cached loads.

Each cold load uses a fresh temporary cache (``GEOADAPT_CACHE``), so it embeds every molecule; the cached
load reads the file the cold load wrote. Writes results/datasets.json.

Run: ``python benchmarks/datasets.py [--molecules 1000]``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import output_dir, save_json  # noqa: E402

from geoadapt.data import load  # noqa: E402
from geoadapt.report import table  # noqa: E402


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=1000)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.molecules = 40
    rows, records = [], []
    previous = os.environ.get("GEOADAPT_CACHE")
    try:
        for name in ("rdkit_nci5k", "esol"):
            for workers in (1, 2):
                with tempfile.TemporaryDirectory() as cache:
                    os.environ["GEOADAPT_CACHE"] = cache
                    cold, data = timed(load, name, limit=args.molecules, workers=workers, progress=False)
                    cached, _ = timed(load, name, limit=args.molecules, workers=workers, progress=False)
                scale = 1000 / len(data)
                records.append(
                    {
                        "dataset": name,
                        "molecules": len(data),
                        "workers": workers,
                        "cold_s_per_1000": cold * scale,
                        "cached_s_per_1000": cached * scale,
                        "failures": len(data.failures),
                    }
                )
                rows.append(
                    [name, len(data), workers, f"{cold * scale:.1f}", f"{cached * scale:.3f}", len(data.failures)]
                )
        for name in ("mutag", "proteins"):
            with tempfile.TemporaryDirectory() as cache:
                os.environ["GEOADAPT_CACHE"] = cache
                cold, data = timed(load, name)
                cached, _ = timed(load, name)
            records.append({"dataset": name, "graphs": len(data), "cold_s": cold, "cached_s": cached})
            rows.append([name, len(data), "-", f"{cold:.2f} (whole set)", f"{cached:.3f} (whole set)", "-"])
    finally:
        if previous is None:
            os.environ.pop("GEOADAPT_CACHE", None)
        else:
            os.environ["GEOADAPT_CACHE"] = previous
    print("Dataset loading: rdkit ETKDG + MMFF conformers (cold) vs the content-keyed cache (cached)\n")
    print(table(["dataset", "items", "workers", "cold s / 1000", "cached s / 1000", "failed"], rows))
    payload = {"benchmark": "datasets", "rows": records}
    print(f"\nsaved {save_json('datasets', payload, output_dir(args))}")
    return payload


if __name__ == "__main__":
    main()
