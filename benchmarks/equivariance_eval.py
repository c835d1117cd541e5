"""Equivariance evaluation of a molecule set: one stacked forward vs a loop of K forwards vs e3nn's checker.

For each model, every route measures the same thing on the same molecules (rdkit NCI-5K, ETKDG
conformers): the error of the model under K random rotations per molecule.

- batched: geoadapt.metrics.equivariance_error — the original batch and its K rotated copies stacked
  into ONE forward pass per chunk of molecules;
- looped: the same rotations applied by geoadapt, but K + 1 separate forward passes per chunk;
- e3nn: ``e3nn.util.test.equivariance_error`` with ``ntrials=K`` (one shared rotation per trial,
  parity and translation tests off, 2 forwards per trial).

Run: ``python benchmarks/equivariance_eval.py [--molecules 1000 --samples 16]``; writes results/equivariance_eval.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from e3nn.util.test import equivariance_error as e3nn_equivariance_error
from torch_geometric.data import Batch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_time, output_dir, save_json  # noqa: E402

from geoadapt.data.molecules import build_molecules  # noqa: E402
from geoadapt.data.rdkit_sets import read_nci5k  # noqa: E402
from geoadapt.groups import SO3  # noqa: E402
from geoadapt.metrics import equivariance_error  # noqa: E402
from geoadapt.models import build  # noqa: E402
from geoadapt.report import table  # noqa: E402


def looped(model, chunk: Batch, group, spec, K: int, gen: torch.Generator) -> torch.Tensor:
    """K + 1 forward passes per chunk: f(x) once, then f(g_k x) for each copy."""
    fx = model(chunk)
    errors = []
    for _ in range(K):
        g = group.sample_like(chunk, gen)
        fgx = model(group.act(g, chunk, spec))
        expected = group.act_output(g, fx, spec)
        errors.append((fgx - expected).norm(dim=-1) / (expected.norm(dim=-1) + 1e-12))
    return torch.stack(errors)


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


def routes(model, spec, chunks: list[Batch], K: int) -> dict:
    """The three routes, each evaluating every chunk once."""
    group = SO3()
    return {
        "batched": lambda: [
            equivariance_error(model, c, group, spec, K, torch.Generator().manual_seed(0)) for c in chunks
        ],
        "looped": lambda: [looped(model, c, group, spec, K, torch.Generator().manual_seed(0)) for c in chunks],
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
                times = {r: median_time(fn, args.repeats, warmup=0 if args.quick else 1) for r, fn in timed.items()}
                batched_err = torch.cat([e.flatten() for e in timed["batched"]()])
            record = {
                "model": name,
                "molecules": len(data),
                "samples": K,
                "chunk": size,
                "seconds": times,
                "looped_over_batched": times["looped"] / times["batched"],
                "e3nn_over_batched": times["e3nn.util.test"] / times["batched"],
                "mean_error": float(batched_err.mean()),
                "max_error": float(batched_err.max()),
            }
            records.append(record)
            rows.append(
                [
                    name,
                    size,
                    f"{times['batched']:.3f}",
                    f"{times['looped']:.3f}",
                    f"{times['e3nn.util.test']:.3f}",
                    f"{record['looped_over_batched']:.2f}x",
                    f"{record['e3nn_over_batched']:.2f}x",
                    f"{record['mean_error']:.1e}",
                ]
            )
    header = [
        "model",
        "chunk",
        "batched s",
        "looped s",
        "e3nn.util.test s",
        "looped/batched",
        "e3nn/batched",
        "mean error",
    ]
    print(f"Equivariance evaluation: {len(data)} molecules x {K} SO(3) samples, median of {args.repeats}\n")
    print(table(header, rows))
    payload = {"benchmark": "equivariance_eval", "rows": records}
    path = save_json("equivariance_eval", payload, output_dir(args))
    print(f"\nsaved {path}")
    return payload


if __name__ == "__main__":
    main()
