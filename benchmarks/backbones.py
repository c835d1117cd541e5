"""Each backbone: parameters, forward+backward time per 1000 molecules, measured E(3) and permutation error.

Run: ``python benchmarks/backbones.py``; writes results/backbones.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch_geometric.data import Batch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median_time, output_dir, save_json  # noqa: E402

from geoadapt.data import load  # noqa: E402
from geoadapt.groups import E3, Permutation  # noqa: E402
from geoadapt.metrics import equivariance_error  # noqa: E402
from geoadapt.models import build  # noqa: E402
from geoadapt.report import table  # noqa: E402

MODELS = ["gin", "gcn", "schnet", "egnn", "e3nn_gnn", "naive_gnn", "pointnet", "dgcnn"]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.molecules, args.batch_size, args.repeats = 20, 10, 1
    data = load("rdkit_nci5k", limit=args.molecules, progress=not args.quick)
    batches = [Batch.from_data_list(data.graphs[i : i + args.batch_size]) for i in range(0, len(data), args.batch_size)]
    probe = Batch.from_data_list(data.graphs[:64])
    rows, records = [], []
    for name in MODELS:
        torch.manual_seed(0)
        model = build(name)
        params = sum(p.numel() for p in model.parameters())

        def step(model=model):
            for batch in batches:
                model.zero_grad()
                model(batch).pow(2).sum().backward()

        model.train()
        seconds = median_time(step, args.repeats, warmup=0 if args.quick else 1) * 1000 / len(data)
        model.eval()
        e3 = float(equivariance_error(model, probe, E3(), model.spec, 4, torch.Generator().manual_seed(0)).mean())
        perm = float(
            equivariance_error(model, probe, Permutation(), model.spec, 4, torch.Generator().manual_seed(0)).mean()
        )
        records.append(
            {
                "model": name,
                "parameters": params,
                "fwd_bwd_s_per_1000": seconds,
                "e3_error": e3,
                "perm_error": perm,
                "symmetry": model.symmetry,
            }
        )
        rows.append([name, f"{params:,}", f"{seconds:.2f}", f"{e3:.1e}", f"{perm:.1e}", model.symmetry])
    print(f"Backbones on {len(data)} NCI molecules (batch {args.batch_size}), float32, median of {args.repeats}\n")
    print(table(["model", "parameters", "fwd+bwd s / 1000 mol", "E(3) error", "perm error", "by construction"], rows))
    payload = {"benchmark": "backbones", "rows": records}
    print(f"\nsaved {save_json('backbones', payload, output_dir(args))}")
    return payload


if __name__ == "__main__":
    main()
