"""Screening throughput of ``geoadapt predict``: molecules per second on 1 and 2 cores, and the peak memory.

The library: rdkit's NCI molecules (``Data/NCI/first_5K.smi`` through ``first_5k.tpsa.csv``) written twice into one
CSV of 10,000 rows (every row is featurized afresh: predict keeps no cache). The model: ``naive_gnn`` with a target
scaler, as a regression checkpoint. Each configuration runs ``geoadapt.prediction.predict_to_csv`` in a fresh
process (so its peak resident memory is its own): ``workers`` = cores featurizing (rdkit ETKDG + MMFF conformers)
and ``torch.set_num_threads(cores)`` for the model; chunks of 1,000 rows. Configurations are interleaved within each
repeat; the table shows medians (min-max). Peak memory: the main process (``ru_maxrss``; also measured once the
libraries and the model are loaded, before any row) and the largest worker.
The same run on a quarter of the rows shows that the peak memory does not grow with the file.

Run: ``python benchmarks/predict_throughput.py [--rows 10000 --repeats 3]``; writes results/predict_throughput.json
and results/predict_throughput.md. ``--quick`` (48 rows, one repeat, in this process: no memory of its own per
configuration) is what the tests run.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import output_dir, save_json  # noqa: E402

CONFIGS = [
    {"cores": 1, "with_equivariance": False},
    {"cores": 2, "with_equivariance": False},
    {"cores": 2, "with_equivariance": True},
]
CHUNK = 1000


def write_library(path: Path, rows: int) -> None:
    """``rows`` SMILES of the NCI set, repeated as needed, with an id column."""
    from geoadapt.data.rdkit_sets import read_nci5k

    smiles, _ = read_nci5k()
    with path.open("w") as handle:
        handle.write("id,smiles\n")
        for i in range(rows):
            handle.write(f"nci{i},{smiles[i % len(smiles)]}\n")


def write_model(path: Path) -> None:
    """A naive_gnn regression checkpoint with a target scaler (seeded weights: what it predicts does not matter)."""
    import torch

    from geoadapt.checkpoints import save
    from geoadapt.models import Standardize, build

    torch.manual_seed(0)
    save(build("naive_gnn"), path, target_scaler=Standardize([0.0], [1.0]), extra={"task": "regression"})


def measure(args: dict) -> dict:
    """One configuration, in this process: seconds, rows, and peak memory (MB) of this process and its workers."""
    import torch

    from geoadapt.checkpoints import load
    from geoadapt.prediction import predict_to_csv

    torch.set_num_threads(args["cores"])
    model = load(args["model"])
    loaded_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # libraries and model, before any row
    start = time.perf_counter()
    summary = predict_to_csv(
        model, args["data"], args["out"], overwrite=True, workers=args["cores"], chunk_size=CHUNK,
        with_equivariance=args["with_equivariance"], progress=False,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    main_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    counts = {k: summary[k] for k in ("rows", "predicted", "failed")}
    return {"seconds": seconds, **counts, "main_mb": main_mb, "worker_mb": worker_mb, "loaded_mb": loaded_mb}


def run_fresh(config: dict, folder: Path, data: Path, model: Path, quick: bool = False) -> dict:
    """One configuration in a fresh process (``quick``: in this one, for the tests; its memory is then not its own)."""
    args = {**config, "data": str(data), "model": str(model), "out": str(folder / "out.csv")}
    if quick:
        return measure(args)
    result = subprocess.run(
        [sys.executable, __file__, "--measure", json.dumps(args)], capture_output=True, text=True, check=True
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure is not None:
        print(json.dumps(measure(json.loads(args.measure))))
        return {}
    if args.quick:
        args.rows, args.repeats = 48, 1
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        write_model(folder / "model.pt")
        small = max(args.rows // 4, 1)
        for rows in (args.rows, small):
            write_library(folder / f"library-{rows}.csv", rows)
        runs: list[list[dict]] = [[] for _ in CONFIGS]
        for _ in range(args.repeats):
            for i, config in enumerate(CONFIGS):
                library = folder / f"library-{args.rows}.csv"
                runs[i].append(run_fresh(config, folder, library, folder / "model.pt", args.quick))
        quarter = run_fresh(CONFIGS[1], folder, folder / f"library-{small}.csv", folder / "model.pt", args.quick)
    rows = []
    for config, measured in zip(CONFIGS, runs):
        rate = [m["rows"] / m["seconds"] for m in measured]
        rows.append({**config, "rows": args.rows, "predicted": measured[0]["predicted"],
                     "failed": measured[0]["failed"], "seconds": spread([m["seconds"] for m in measured]),
                     "molecules_per_s": spread(rate),
                     "main_mb": spread([m["main_mb"] for m in measured]),
                     "loaded_mb": spread([m["loaded_mb"] for m in measured]),
                     "worker_mb": spread([m["worker_mb"] for m in measured])})  # fmt: skip
    memory = {
        "rows": small,
        "cores": CONFIGS[1]["cores"],
        "main_mb": quarter["main_mb"],
        "worker_mb": quarter["worker_mb"],
    }
    payload = {"benchmark": "predict_throughput", "repeats": args.repeats, "chunk_size": CHUNK, "rows": rows,
               "memory_at_a_quarter": memory}  # fmt: skip
    markdown = report(payload)
    print(markdown)
    out = output_dir(args)
    (out / "predict_throughput.md").write_text(markdown + "\n")
    print(f"\nsaved {save_json('predict_throughput', payload, out)}")
    return payload


def report(payload: dict) -> str:
    """The table of the run, in markdown."""
    from geoadapt.report import table

    def cell(s: dict, spec: str) -> str:
        return f"{s['median']:{spec}} ({s['min']:{spec}}-{s['max']:{spec}})"

    lines = [
        [r["cores"], "yes" if r["with_equivariance"] else "no", r["rows"], r["failed"],
         cell(r["molecules_per_s"], ".1f"), cell(r["seconds"], ".0f"), f"{r['main_mb']['median']:.0f}",
         f"{r['worker_mb']['median']:.0f}"]
        for r in payload["rows"]
    ]  # fmt: skip
    header = [
        "cores",
        "equivariance",
        "rows",
        "failed",
        "molecules / s",
        "seconds",
        "peak MB (main)",
        "peak MB (worker)",
    ]
    m = payload["memory_at_a_quarter"]
    return (
        f"#### geoadapt predict: {payload['rows'][0]['rows']} molecules, chunks of {payload['chunk_size']}, "
        f"medians of {payload['repeats']} interleaved repeats\n\n{table(header, lines)}\n\n"
        f"A quarter of the rows ({m['rows']}) on {m['cores']} cores: peak {m['main_mb']:.0f} MB (main), "
        f"{m['worker_mb']:.0f} MB (worker)."
    )


if __name__ == "__main__":
    main()
