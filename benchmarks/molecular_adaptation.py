"""Molecular regression adaptation: pretrain on NCI TPSA, adapt to ChEMBL2321810 activity and ESOL.

Backbones: the coordinate-naive GNN pretrained with SO(3) augmentation (approximately invariant, the case
the methods are for) and EGNN (exactly E(3) invariant, as a reference). Methods: fine-tuning, linear probe,
augmentation, frame averaging, canonicalization, mixed-symmetry regularizer, constrained regularizer.
Columns: RMSE, MAE, R², SO(3) and permutation error, SO(3) score, wall time and its ratio to fine-tuning;
mean ± std over seeds. Writes results/molecular_adaptation.{json,md} and PNG plots.

Run: ``python benchmarks/molecular_adaptation.py [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from torch_geometric.loader import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import output_dir, save_json  # noqa: E402

import geoadapt  # noqa: E402
from geoadapt.data import load  # noqa: E402
from geoadapt.experiments import MOLECULAR_METHODS, adapt_once, pm, summarize  # noqa: E402
from geoadapt.report import table  # noqa: E402

KEYS = ["rmse", "mae", "r2", "equivariance_error/SO3", "equivariance_error/Permutation()", "equivariance_score/SO3"]


def plot(out_dir: Path, name: str, results) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.4))
    for method in dict.fromkeys(r.method for r in results):
        run = next(r for r in results if r.method == method)
        ax.plot(
            [h["epoch"] for h in run.history],
            [max(h["val_equivariance_error/SO3"], 1e-9) for h in run.history],
            marker="o",
            ms=2,
            label=method,
        )
    ax.set(xlabel="epoch", ylabel="SO(3) error (validation)", yscale="log", title=name)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out_dir / f"molecular_adaptation_{name}_error_per_epoch.png", dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--source-molecules", type=int, default=4999)
    parser.add_argument("--pretrain-epochs", type=int, default=30)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--targets", default="rdkit_chembl2321810,esol")
    parser.add_argument("--methods", default=",".join(MOLECULAR_METHODS))
    parser.add_argument("--backbones", default="naive_gnn,egnn")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    limit = None
    if args.quick:
        args.seeds, args.source_molecules, args.pretrain_epochs, args.epochs = 2, 80, 1, 1
        args.targets, args.methods, args.backbones, limit = (
            "rdkit_chembl2321810",
            "finetune,constrained",
            "naive_gnn",
            80,
        )
    out_dir = output_dir(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    records, sections = [], []
    for backbone in args.backbones.split(","):
        checkpoint = out_dir / f"pretrained_{backbone}_nci.pt"
        augment = "so3" if backbone == "naive_gnn" else None  # EGNN is exactly invariant: nothing to augment
        _, source = geoadapt.pretrain(
            backbone,
            "rdkit_nci5k",
            checkpoint,
            epochs=args.pretrain_epochs,
            limit=args.source_molecules,
            lr=3e-3,
            batch_size=64,
            augment=augment,
            progress=not args.quick,
        )
        methods = args.methods.split(",") if backbone == "naive_gnn" else ["finetune", "linear_probe"]
        for target in args.targets.split(","):
            parts = [load(target, split=s, limit=limit, progress=False) for s in ("train", "val", "test")]
            loaders = [
                DataLoader(parts[0].graphs, batch_size=32, shuffle=True),
                DataLoader(parts[1].graphs, batch_size=256),
                DataLoader(parts[2].graphs, batch_size=256),
            ]
            results = [
                adapt_once(m, str(checkpoint), loaders, seed, args.epochs, 1e-3)
                for seed in range(args.seeds)
                for m in methods
            ]
            summary = summarize(results, KEYS)
            base = summary[methods[0]]["seconds"]
            rows = [
                [
                    m,
                    pm(s, "rmse"),
                    pm(s, "mae"),
                    pm(s, "r2"),
                    pm(s, "equivariance_error/SO3", ".1e"),
                    pm(s, "equivariance_error/Permutation()", ".0e"),
                    pm(s, "equivariance_score/SO3", ".4f"),
                    f"{s['seconds']:.1f}",
                    f"{s['seconds'] / base:.2f}x",
                ]
                for m, s in summary.items()
            ]
            header = ["method", "RMSE", "MAE", "R²", "SO(3) error", "perm error", "SO(3) score", "time s", "time ratio"]
            title = (
                f"### {backbone} (pretrained on NCI TPSA, source val RMSE {source['rmse']:.2f}) -> {target}\n\n"
                f"{len(parts[0])}/{len(parts[1])}/{len(parts[2])} train/val/test, {args.epochs} epochs, "
                f"{args.seeds} seeds (mean ± std)\n\n"
            )
            sections.append(title + table(header, rows))
            print(sections[-1] + "\n")
            plot(out_dir, f"{backbone}_{target}", results)
            mixed_weights = [r.notes for r in results if r.method == "mixed"]
            records.append(
                {
                    "backbone": backbone,
                    "target": target,
                    "source_metrics": source,
                    "summary": summary,
                    "mixed_weights": mixed_weights,
                    "runs": [
                        {
                            "method": r.method,
                            "seed": r.seed,
                            "metrics": r.metrics,
                            "seconds": r.seconds,
                            "notes": r.notes,
                        }
                        for r in results
                    ],
                }
            )
    payload = {
        "benchmark": "molecular_adaptation",
        "rows": [
            {
                "backbone": r["backbone"],
                "target": r["target"],
                **{f"{m}/{k}": v for m, s in r["summary"].items() for k, v in s.items()},
            }
            for r in records
        ],
        "details": records,
    }
    (out_dir / "molecular_adaptation.md").write_text("\n\n".join(sections) + "\n")
    print(f"saved {save_json('molecular_adaptation', payload, out_dir)}")
    return payload


if __name__ == "__main__":
    main()
