"""What the equivariance regularizer costs per training epoch, and what it buys: time ratio and final error.

Every configuration adapts the same pretrained model on the same data (the coordinate-naive GNN pretrained on
NCI TPSA with SO(3) augmentation, adapted to ChEMBL2321810; the e3nn network from scratch, for time only: it is
exact by construction). Trainers run interleaved, one epoch each in turn, so a slow moment of the machine hits
all of them; the time ratio of a configuration is the median over epochs of its epoch time divided by the plain
fine-tuning epoch run just before it, with the min-max spread. After the last epoch each model's SO(3) error
and score are measured on the test molecules (relative to the targets' spread, as everywhere in geoadapt).

Configurations: one transformed copy per graph (``n_samples=1``) of every graph on every step (the reference),
of a random part of each batch (``batch_fraction``), on one step in ``every`` (lazy, scaled by ``every``), the
library default (``*``), and four copies for reference.

Run: ``python benchmarks/regularizer_overhead.py [--epochs 8 --models naive_gnn,e3nn_gnn]``; writes
results/regularizer_overhead.json.
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

import geoadapt  # noqa: E402
from geoadapt.checkpoints import load as load_model  # noqa: E402
from geoadapt.data import load  # noqa: E402
from geoadapt.groups import SO3  # noqa: E402
from geoadapt.models import build  # noqa: E402
from geoadapt.regularizers import EquivarianceRegularizer  # noqa: E402
from geoadapt.report import table  # noqa: E402
from geoadapt.train import Trainer  # noqa: E402

_DEFAULT = EquivarianceRegularizer(SO3(), geoadapt.Spec(fields={"pos": "1o"}, output="0e"))
DEFAULTS = {name: getattr(_DEFAULT, name) for name in ("n_samples", "batch_fraction", "every")}  # "auto" resolved
# (n_samples, batch_fraction, every); None is the library's default for that option.
CONFIGS = [(1, 1.0, 1), (1, 0.5, 1), (1, 0.25, 1), (1, 0.5, 2), (1, 1.0, 4), (None, None, None), (4, 1.0, 1)]


def resolved(config: tuple) -> tuple:
    """A configuration with the library defaults filled in."""
    return tuple(DEFAULTS[k] if v is None else v for k, v in zip(("n_samples", "batch_fraction", "every"), config))


def _label(config: tuple) -> str:
    """``n_samples/batch_fraction/every`` as given on the command line (``default`` for the library's)."""
    return "default" if config == (None, None, None) else "/".join(str(v) for v in config)


def model_for(name: str, checkpoint: Path | None, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    if checkpoint is not None:
        return load_model(checkpoint)  # the Trainer fits the target scale of this task
    return build(name)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="timed epochs per configuration (after one warm-up)")
    parser.add_argument("--repeats", type=int, default=None, help="same as --epochs (each epoch is one repeat)")
    parser.add_argument("--models", default="naive_gnn,e3nn_gnn")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=3, help="adaptation runs per configuration (final errors)")
    parser.add_argument("--source-molecules", type=int, default=1500)
    parser.add_argument(
        "--configs",
        default=None,
        help="only these configurations, as n_samples/batch_fraction/every, or 'default' (e.g. '1/1.0/1,default'): "
        "fewer trainers per round, more paired repeats per minute",
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    epochs = args.repeats or args.epochs
    limit, source, pretrain_epochs = None, args.source_molecules, 15
    if args.quick:
        epochs, limit, source, pretrain_epochs, args.models, args.seeds = 1, 60, 60, 1, "naive_gnn", 1
    out_dir = output_dir(args)
    parts = [load("rdkit_chembl2321810", split=s, limit=limit, progress=False) for s in ("train", "val", "test")]
    train = DataLoader(parts[0].graphs, batch_size=args.batch_size, shuffle=True)
    test = DataLoader(parts[2].graphs, batch_size=256)
    rows, records = [], []
    for name in args.models.split(","):
        checkpoint = None
        if name == "naive_gnn":
            checkpoint = out_dir / "overhead_pretrained_naive_gnn.pt"
            geoadapt.pretrain(
                name, "rdkit_nci5k", checkpoint, epochs=pretrain_epochs, limit=source, lr=3e-3, batch_size=64,
                augment="so3", seed=0, progress=False,
            )  # fmt: skip
        configs = CONFIGS if name == "naive_gnn" else [c for c in CONFIGS if c != (4, 1.0, 1)]
        if args.configs:
            configs = [c for c in configs if _label(c) in args.configs.split(",")]
        keys = ["plain", *configs]
        times: dict[object, list[float]] = {key: [] for key in keys}
        ratios: dict[object, list[float]] = {key: [] for key in keys}
        finals: dict[object, list[dict]] = {key: [] for key in keys}
        for seed in range(args.seeds):
            trainers = {}
            for key in keys:
                model = model_for(name, checkpoint, seed)
                regs = []
                if key != "plain":
                    options = {k: v for k, v in zip(("n_samples", "batch_fraction", "every"), key) if v is not None}
                    regs = [EquivarianceRegularizer(SO3(), model.spec, **options)]
                trainers[key] = Trainer(
                    model, "regression", regs, groups=[SO3()], max_epochs=epochs + 1, seed=seed, progress=False
                )
            for epoch in range(epochs + 1):  # epoch 0 warms every trainer up and is not timed
                plain_seconds = None
                for key, trainer in trainers.items():
                    start = time.perf_counter()
                    trainer.fit(train, epochs=1)
                    seconds = time.perf_counter() - start
                    plain_seconds = seconds if key == "plain" else plain_seconds
                    if epoch > 0 or args.quick:
                        times[key].append(seconds)
                        ratios[key].append(seconds / plain_seconds)
            for key, trainer in trainers.items():
                finals[key].append(trainer.evaluate(test))
        for key in keys:
            n, f, k = resolved(key) if key != "plain" else ("-", "-", "-")
            default = "*" if key == (None, None, None) else ""
            summary = {
                m: (statistics.mean(r[m] for r in finals[key]), statistics.pstdev(r[m] for r in finals[key]))
                for m in ("rmse", "equivariance_error", "equivariance_score")
            }
            records.append(
                {
                    "model": name,
                    "config": "plain" if key == "plain" else {"n_samples": n, "batch_fraction": f, "every": k},
                    "library_default": bool(default),
                    "seconds_per_epoch": statistics.median(times[key]),
                    "ratio": statistics.median(ratios[key]),
                    "ratio_min": min(ratios[key]),
                    "ratio_max": max(ratios[key]),
                    **{f"{m}_mean": v[0] for m, v in summary.items()},
                    **{f"{m}_std": v[1] for m, v in summary.items()},
                    "seeds": args.seeds,
                }
            )
            rows.append(
                [
                    name,
                    "plain fine-tuning" if key == "plain" else f"{n} / {f} / {k}{default}",
                    f"{statistics.median(times[key]):.3f}",
                    f"{statistics.median(ratios[key]):.2f}x [{min(ratios[key]):.2f}-{max(ratios[key]):.2f}]",
                    "{:.3f} ± {:.3f}".format(*summary["rmse"]),
                    "{:.1e} ± {:.0e}".format(*summary["equivariance_error"]),
                    "{:.4f}".format(summary["equivariance_score"][0]),
                ]
            )
    print(
        f"Regularizer cost and effect: ChEMBL2321810 ({len(parts[0])} training molecules, batch {args.batch_size}), "
        f"SO(3), {epochs} timed epochs x {args.seeds} seeds, time ratios paired epoch by epoch (median [min-max]), "
        f"final test RMSE and SO(3) error (mean ± std over seeds); * = library default\n"
    )
    header = ["model", "n_samples / batch_fraction / every", "s/epoch", "time ratio", "RMSE", "SO(3) error", "score"]
    print(table(header, rows))
    payload = {
        "benchmark": "regularizer_overhead",
        "epochs": epochs,
        "seeds": args.seeds,
        "defaults": DEFAULTS,
        "rows": records,
    }
    print(f"\nsaved {save_json('regularizer_overhead', payload, out_dir)}")
    return payload


if __name__ == "__main__":
    main()
