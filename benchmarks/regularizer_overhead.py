"""Time per epoch of regularized adaptation / plain fine-tuning: same model, data and batch size, one run.

The trainers alternate epoch by epoch (plain, regularized, plain, ...), so drifts in machine speed hit
all of them. Configurations: n_samples 1 and 4, copies of the whole batch (batch_fraction=1) or of a
random quarter (0.25, an unbiased estimate of the same penalty), lazy regularization (every=k:
the penalty on one step in k, scaled by k), and the copies stacked into the batch's forward or run in
their own forward (``stack``; each model's default is marked ``*``).

Run: ``python benchmarks/regularizer_overhead.py``; writes results/regularizer_overhead.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from torch_geometric.loader import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import output_dir, save_json  # noqa: E402

from geoadapt.data import load  # noqa: E402
from geoadapt.groups import SO3  # noqa: E402
from geoadapt.models import build  # noqa: E402
from geoadapt.regularizers import EquivarianceRegularizer  # noqa: E402
from geoadapt.report import table  # noqa: E402
from geoadapt.train import Trainer  # noqa: E402


def epoch_seconds(trainer: Trainer, loader: DataLoader, epoch: int) -> float:
    """Wall time of one training epoch (no validation)."""
    start = time.perf_counter()
    trainer._train_epoch(trainer.model, loader, epoch)
    return time.perf_counter() - start


def make_trainer(name: str, regularizers_of, stack: bool | None = None) -> Trainer:
    torch.manual_seed(0)
    model = build(name)
    trainer = Trainer(model, "regression", regularizers_of(model), max_epochs=1, progress=False, stack=stack)
    trainer.normalization = {"mean": [0.0], "std": [1.0]}
    trainer._build_optimizer()
    return trainer


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--molecules", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per trainer (after one warm-up)")
    parser.add_argument("--models", default="naive_gnn,e3nn_gnn")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.molecules, args.epochs, args.models = 48, 1, "naive_gnn"
    data = load("rdkit_nci5k", limit=args.molecules, progress=not args.quick)
    loader = DataLoader(data.graphs, batch_size=args.batch_size, shuffle=True)
    # (n_samples, batch_fraction, every, stack); stack None is the model's default (Trainer's rule).
    configs = [
        (1, 1.0, 1, None),
        (1, 0.25, 1, None),
        (1, 0.25, 1, "other"),
        (1, 0.25, 2, None),
        (1, 1.0, 4, None),
        (4, 1.0, 1, None),
        (4, 0.25, 1, None),
    ]
    rows, records = [], []
    for name in args.models.split(","):
        plain = make_trainer(name, lambda m: [])
        default_stack = plain.stack  # the Trainer's rule: the model's ``stack_copies``
        regularized = {
            c: make_trainer(
                name,
                lambda m, n=c[0], f=c[1], k=c[2]: [
                    EquivarianceRegularizer(SO3(), m.spec, n_samples=n, batch_fraction=f, every=k)
                ],
                stack=default_stack if c[3] is None else not default_stack,
            )
            for c in configs
        }
        times: dict[object, list[float]] = {"plain": [], **{c: [] for c in configs}}
        for epoch in range(args.epochs + 1):  # epoch 0 warms up every trainer and is not counted
            for key, trainer in [("plain", plain), *regularized.items()]:
                seconds = epoch_seconds(trainer, loader, epoch)
                if epoch > 0 or args.quick:
                    times[key].append(seconds)
        base = statistics.median(times["plain"])
        for config in configs:
            n, f, k, _ = config
            stack = regularized[config].stack
            ratio = statistics.median(r / p for r, p in zip(times[config], times["plain"]))
            seconds = statistics.median(times[config])
            records.append(
                {
                    "model": name,
                    "n_samples": n,
                    "batch_fraction": f,
                    "every": k,
                    "stack": stack,
                    "plain_s": base,
                    "regularized_s": seconds,
                    "ratio": ratio,
                }
            )
            mark = "*" if stack == default_stack else ""
            rows.append([name, n, f, k, f"{stack}{mark}", f"{base:.3f}", f"{seconds:.3f}", f"{ratio:.2f}x"])
    print(
        f"Regularizer overhead: {len(data)} NCI molecules, batch {args.batch_size}, SO(3), "
        f"median over {args.epochs} epochs (ratios paired epoch by epoch)\n"
    )
    header = ["model", "n_samples", "batch_fraction", "every", "stack", "plain s/epoch", "regularized s/epoch", "ratio"]
    print(table(header, rows))
    payload = {"benchmark": "regularizer_overhead", "rows": records}
    print(f"\nsaved {save_json('regularizer_overhead', payload, output_dir(args))}")
    return payload


if __name__ == "__main__":
    main()
