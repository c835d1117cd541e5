"""Classifiers and their symmetry: MUTAG with Laplacian eigenvectors (sign flips), one logit per graph.

A GIN reads 4 Laplacian eigenvectors next to the atom types; each eigenvector is defined only up to its sign, so
the prediction should not change when signs flip (the ``SignFlip`` group). Three ways to train it, each with the
library's defaults: plain training, augmentation with random sign flips, and the default equivariance regularizer
(self-setting weight; for classifiers it compares predictive distributions, Jensen-Shannon). Stratified 10-fold
cross-validation, the out-of-fold test predictions pooled per seed: ROC-AUC, accuracy, the share of one class
among the predictions (a collapse shows), sign-flip error (relative, logits) and prediction consistency;
mean ± std over seeds. Writes results/classification_adaptation.{json,md}.

``--balance-ratios 0.3,0.4`` adds rows for the regularizer with those gradient ratios instead of the default
(``balance_ratio``: the trade-off between the error cut and ROC-AUC).

Run: ``python benchmarks/classification_adaptation.py [--seeds 3 --epochs 100 --balance-ratios 0.3,0.4]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch
from torch_geometric.loader import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import output_dir, save_json  # noqa: E402

from geoadapt.adapt.augment import Augmentation  # noqa: E402
from geoadapt.data import load  # noqa: E402
from geoadapt.data.graphs import add_laplacian_pe, stratified_folds  # noqa: E402
from geoadapt.groups import SignFlip  # noqa: E402
from geoadapt.metrics import classification_metrics, measure_equivariance, predicted_class  # noqa: E402
from geoadapt.models import build  # noqa: E402
from geoadapt.regularizers import EquivarianceRegularizer  # noqa: E402
from geoadapt.report import table  # noqa: E402
from geoadapt.train import Trainer  # noqa: E402

METHODS = ("plain", "augment", "regularizer")


def fold_predictions(graphs, train_idx, test_idx, method: str, seed: int, epochs: int):
    """Train one fold; return test logits, labels and the sign-flip measurement on the test graphs."""
    torch.manual_seed(seed)
    model = build(
        "gin", in_dim=graphs[0].x.shape[1], edge_dim=0, out_dim=1, hidden=32, num_layers=4, dropout=0.5,
        pe="eigvecs", pe_dim=graphs[0].eigvecs.shape[1],
    )  # fmt: skip
    regs = []
    if method.startswith("regularizer"):  # "regularizer" (the default) or "regularizer r=0.3"
        ratio = float(method.split("=")[1]) if "=" in method else "auto"
        regs = [EquivarianceRegularizer(SignFlip(), model.spec, balance_ratio=ratio)]
    trainer = Trainer(
        model,
        "classification",
        regs,
        strategy="augment" if method == "augment" else None,
        groups=[SignFlip()],
        max_epochs=epochs,
        lr=0.01,
        seed=seed,
        scheduler="step",
        scheduler_options={"step_size": 50, "gamma": 0.5},
        progress=False,
    )
    train = DataLoader([graphs[i] for i in train_idx], batch_size=32, shuffle=True)
    test = list(DataLoader([graphs[i] for i in test_idx], batch_size=256))
    trainer.fit(train)
    predictor = trainer.predictor()
    with torch.no_grad():
        logits = torch.cat([predictor(b) for b in test])
    labels = torch.cat([b.y.reshape(-1) for b in test])
    # Moved test data: each test graph's eigenvector signs flipped at random (seeded), as the other tables do.
    move, generator = Augmentation(SignFlip(), model.spec), torch.Generator().manual_seed(seed)
    with torch.no_grad():
        moved = torch.cat([predictor(move(b, generator)) for b in test])
    m = measure_equivariance(
        predictor, test, SignFlip(), model.spec, 8, torch.Generator().manual_seed(0), classifier=True
    )
    return logits, moved, labels, m, trainer.warnings


def run_seed(graphs, method: str, seed: int, epochs: int, folds: int) -> dict:
    labels = torch.cat([g.y.reshape(-1) for g in graphs])
    logits, moved, ys, errors, consistency, warnings = [], [], [], [], [], []
    for fold in stratified_folds(labels, 10, seed=seed)[:folds]:
        train_idx = list(fold["train"]) + list(fold["val"])
        out, out_moved, y, m, warned = fold_predictions(graphs, train_idx, list(fold["test"]), method, seed, epochs)
        logits.append(out)
        moved.append(out_moved)
        ys.append(y)
        errors.append(m.relative.flatten())
        consistency.append(m.consistency)
        warnings += warned
    logits, ys = torch.cat(logits), torch.cat(ys)
    metrics = classification_metrics(logits, ys)
    moved_metrics = classification_metrics(torch.cat(moved), ys)
    classes = predicted_class(logits)
    return {
        "method": method,
        "seed": seed,
        "roc_auc": metrics.get("roc_auc"),
        "moved_roc_auc": moved_metrics.get("roc_auc"),
        "accuracy": metrics["accuracy"],
        "moved_accuracy": moved_metrics["accuracy"],
        "recall": metrics["recall"],
        "majority_share": float(torch.bincount(classes, minlength=2).max()) / classes.numel(),
        "signflip_error": float(torch.cat(errors).mean()),
        "consistency": statistics.mean(consistency),
        "warnings": warnings,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--folds", type=int, default=10)
    parser.add_argument("--balance-ratios", default="", help="extra regularizer rows, e.g. 0.3,0.4")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs, args.folds = 1, 2, 2
    graphs = [add_laplacian_pe(g, k=4) for g in load("mutag")]
    methods = METHODS + tuple(f"regularizer r={float(r):g}" for r in args.balance_ratios.split(",") if r)
    runs = [run_seed(graphs, method, seed, args.epochs, args.folds) for seed in range(args.seeds) for method in methods]
    keys = ("roc_auc", "moved_roc_auc", "accuracy", "moved_accuracy", "recall", "majority_share", "signflip_error")
    keys += ("consistency",)
    rows, summary = [], {}
    for method in methods:
        mine = [r for r in runs if r["method"] == method]
        stats = {}
        for key in keys:
            values = [r[key] for r in mine if r[key] is not None]
            stats[key] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
        summary[method] = stats
        rows.append(
            [method]
            + [
                f"{stats[k][0]:.3f} ± {stats[k][1]:.3f}"
                for k in ("roc_auc", "moved_roc_auc", "accuracy", "moved_accuracy", "recall", "majority_share")
            ]
            + [f"{stats['signflip_error'][0]:.1e} ± {stats['signflip_error'][1]:.0e}", f"{stats['consistency'][0]:.3f}"]
        )
    header = ["method", "ROC-AUC", "ROC-AUC moved", "accuracy", "accuracy moved", "recall", "largest class share"]
    header += ["sign-flip error", "consistency"]
    text = (
        f"MUTAG, GIN with 4 Laplacian eigenvectors, one logit, {args.folds}-fold CV, {args.epochs} epochs, "
        f"{args.seeds} seeds (mean ± std)\n\n" + table(header, rows)
    )
    base, reg = summary["plain"], summary["regularizer"]
    cut = base["signflip_error"][0] / max(reg["signflip_error"][0], 1e-300)
    gap = reg["roc_auc"][0] - base["roc_auc"][0]
    text += f"\n\nregularizer: sign-flip error cut {cut:.1f}x against plain training; ROC-AUC {gap:+.3f}"
    for method in methods[len(METHODS) :]:
        other = summary[method]
        other_cut = base["signflip_error"][0] / max(other["signflip_error"][0], 1e-300)
        text += (
            f"\n{method}: sign-flip error cut {other_cut:.1f}x; ROC-AUC {other['roc_auc'][0] - base['roc_auc'][0]:+.3f}"
        )
    print(text)
    out_dir = output_dir(args)
    (out_dir / "classification_adaptation.md").write_text(text + "\n")
    rows_json = [
        {"method": m, **{k: v[0] for k, v in s.items()}, **{f"{k}_std": v[1] for k, v in s.items()}}
        for m, s in summary.items()
    ]
    payload = {
        "benchmark": "classification_adaptation",
        "rows": rows_json,
        "runs": runs,
        "error_cut": cut,
        "roc_auc_change": gap,
    }
    print(f"\nsaved {save_json('classification_adaptation', payload, out_dir)}")
    return payload


if __name__ == "__main__":
    main()
