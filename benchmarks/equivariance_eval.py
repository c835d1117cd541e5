"""What measuring equivariance costs: geoadapt against the model's own forwards and against e3nn's checker.

For each backbone, on the same molecules (rdkit NCI-5K, ETKDG conformers, in chunks of molecules):

- geoadapt: ``geoadapt.metrics.equivariance_error`` with K SO(3) samples per molecule, the batch and its copies
  spread over as few forwards as keep each under the model's node budget (``forward_plan``; "copies run" shows
  the plan of the first chunk), each cut into runs of consecutive graphs where the model sets ``split_nodes``;
  all copies stacked in one forward and one copy per forward are also timed;
- own forwards: the model alone, K + 1 forwards of each chunk (the least any measurement needs);
- e3nn.util.test: ``e3nn.util.test.equivariance_error`` with ``ntrials=K`` (one rotation per trial, parity
  and translation off, 2 forwards per trial).

Each route runs once per repeat, the routes interleaved; the table shows the medians of the per-repeat
ratios with their min-max spread.

Run: ``python benchmarks/equivariance_eval.py [--molecules 1000 --samples 16 --repeats 5]``; writes
results/equivariance_eval.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from e3nn.util.test import equivariance_error as e3nn_equivariance_error
from torch_geometric.data import Batch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import output_dir, save_json  # noqa: E402

from geoadapt.data.molecules import build_molecules  # noqa: E402
from geoadapt.data.rdkit_sets import read_nci5k  # noqa: E402
from geoadapt.equivariance import copies_needed, forward_plan, split_nodes  # noqa: E402
from geoadapt.groups import SO3  # noqa: E402
from geoadapt.metrics import equivariance_error  # noqa: E402
from geoadapt.models import build  # noqa: E402
from geoadapt.report import table  # noqa: E402


def own_forwards(model, chunk: Batch, K: int) -> None:
    """The model alone: K + 1 forwards of the chunk, no transformation, no comparison."""
    for _ in range(K + 1):
        model(chunk)


def e3nn_route(model, chunk: Batch, K: int) -> dict:
    """e3nn's own checker on (pos, x): positions as cartesian points, features as scalars."""

    def func(pos, x):
        moved = chunk.clone()
        moved.pos, moved.x = pos, x
        return model(moved)

    return e3nn_equivariance_error(
        func,
        [chunk.pos, chunk.x],
        irreps_in=["cartesian_points", f"{chunk.x.shape[1]}x0e"],
        irreps_out=[str(model.spec.output)],
        ntrials=K,
        do_parity=False,
        do_translation=False,
    )


def describe_plan(plan: list[int], cut: int | None = None) -> str:
    """``[1, 2, 2]`` -> ``"3 forwards (batch + 1, 2, 2 copies)"``; ``cut``: the node budget each forward is cut
    into runs under (``split_nodes``), when it applies."""
    runs = f", each in runs of <= {cut} nodes" if cut else ""
    if len(plan) == 1:
        return f"1 forward (batch + {plan[0]} copies{runs})"
    alone = "batch alone, " if plan[0] == 0 else f"batch + {plan[0]}, "
    rest = plan[1:]
    sizes = f"{len(rest)} x {rest[0]}" if len(set(rest)) == 1 else ", ".join(map(str, rest))
    return f"{len(plan)} forwards ({alone}{sizes} copies{runs})"


def ratio(times: dict[str, list[float]], a: str, b: str) -> list[float]:
    """``[median, min, max]`` over repeats of the time of route ``a`` over route ``b`` in the same repeat."""
    values = [x / y for x, y in zip(times[a], times[b])]
    return [statistics.median(values), min(values), max(values)]


def routes(model, spec, chunks: list[Batch], K: int) -> dict:
    """Every route, each evaluating every chunk once."""
    group = SO3()

    def ours(stack):
        return lambda: [
            equivariance_error(model, c, group, spec, K, torch.Generator().manual_seed(0), stack=stack) for c in chunks
        ]

    return {
        "geoadapt": ours(None),
        "stacked": ours(True),
        "one copy per forward": ours(False),
        "own forwards": lambda: [own_forwards(model, c, K) for c in chunks],
        "e3nn.util.test": lambda: [e3nn_route(model, c, K) for c in chunks],
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=16, help="K rotations per molecule")
    parser.add_argument("--chunks", default="10,100", help="molecules per batch (comma-separated sizes)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default="e3nn_gnn,gin,naive_gnn")
    parser.add_argument("--quick", action="store_true", help="tiny run for the test suite")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.molecules, args.samples, args.chunks, args.repeats = 24, 4, "12", 1
    smiles, tpsa = read_nci5k()
    data = build_molecules(
        "rdkit_nci5k", smiles[: args.molecules], [[v] for v in tpsa[: args.molecules]], progress=not args.quick
    )
    K = args.samples
    rows, records = [], []
    torch.manual_seed(0)
    for name in args.models.split(","):
        model = build(name, output="0e+1o") if name == "e3nn_gnn" else build(name)
        model.eval()
        for size in map(int, args.chunks.split(",")):
            chunks = [Batch.from_data_list(data.graphs[i : i + size]) for i in range(0, len(data), size)]
            with torch.no_grad():
                timed = routes(model, model.spec, chunks, K)
                times: dict[str, list[float]] = {r: [] for r in timed}
                for repeat in range(args.repeats + (0 if args.quick else 1)):  # the first round warms up
                    for route, fn in timed.items():
                        start = time.perf_counter()
                        fn()
                        if repeat > 0 or args.quick:
                            times[route].append(time.perf_counter() - start)
                errors = torch.cat([e.flatten() for e in timed["geoadapt"]()])

            budget = split_nodes(model)
            over_own, e3nn_over = ratio(times, "geoadapt", "own forwards"), ratio(times, "e3nn.util.test", "geoadapt")
            record = {
                "model": name,
                "molecules": len(data),
                "samples": K,
                "chunk": size,
                "forward_plan": forward_plan(model, chunks[0], copies_needed(SO3(), K)),
                "split_nodes": budget if budget is not None and chunks[0].num_nodes > budget else None,
                "seconds": {r: statistics.median(v) for r, v in times.items()},
                "geoadapt_over_own_forwards": over_own,
                "e3nn_over_geoadapt": e3nn_over,
                "stacked_over_one_copy_per_forward": ratio(times, "stacked", "one copy per forward"),
                "mean_error": float(errors.mean()),
            }
            records.append(record)
            rows.append(
                [
                    name,
                    size,
                    describe_plan(record["forward_plan"], record["split_nodes"]),
                    f"{record['seconds']['geoadapt']:.3f}",
                    f"{record['seconds']['own forwards']:.3f}",
                    f"{record['seconds']['e3nn.util.test']:.3f}",
                    "{:.2f}x [{:.2f}-{:.2f}]".format(*over_own),
                    "{:.2f}x [{:.2f}-{:.2f}]".format(*e3nn_over),
                    "{:.2f}x".format(record["stacked_over_one_copy_per_forward"][0]),
                    f"{record['mean_error']:.1e}",
                ]
            )
    header = [
        "model",
        "chunk",
        "copies run",
        "geoadapt s",
        "own K+1 forwards s",
        "e3nn.util.test s",
        "geoadapt / own",
        "e3nn / geoadapt",
        "stacked / per copy",
        "mean error",
    ]
    print(
        f"Equivariance evaluation: {len(data)} molecules x {K} SO(3) samples, {args.repeats} interleaved repeats "
        "(median [min-max] of per-repeat ratios)\n"
    )
    print(table(header, rows))
    payload = {"benchmark": "equivariance_eval", "rows": records}
    path = save_json("equivariance_eval", payload, output_dir(args))
    print(f"\nsaved {path}")
    return payload


if __name__ == "__main__":
    main()
