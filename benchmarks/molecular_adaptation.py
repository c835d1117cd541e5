"""Molecular adaptation on several targets: does the default regularizer keep its promise on data it was never
tuned on?

Backbone: the coordinate-naive GNN (raw coordinates as features: approximately invariant at best), either
pretrained on rdkit's NCI molecules (TPSA) with SO(3) augmentation, or trained from scratch. Targets: molecule sets
that load offline (ChEMBL2321810 activity, ESOL solubility, Lipophilicity, BBBP penetration: classification).
Methods, every one with the library's defaults (nothing tuned per target): plain fine-tuning, augmentation, the
default regularizer (self-setting weight), the constrained regularizer (default ε), canonicalization, frame
averaging. Columns: the task metric (RMSE, or ROC-AUC and accuracy), the same metric on the test molecules each
rotated at random ("moved": RDKit's embedding aligns a molecule's principal axes with x, y, z, so a model that
reads raw coordinates can use the frame as information, which no other frame gives it), absolute and relative
SO(3) error of the test predictions (relative to the targets' spread for regression), SO(3) score, prediction
consistency for classifiers, whether the constraint held on the validation data, and wall time against fine-tuning;
mean ± std over seeds. Each target writes results/molecular_adaptation_<target>.{json,md}; ``--report`` prints
the table of every target found in results/.

``--balance-ratio R`` gives the regularizers a fixed penalty-to-task gradient ratio instead of the default
(``balance_ratio="auto"``), and ``--regularizer-options JSON`` any other ``EquivarianceRegularizer`` options
(e.g. ``'{"batch_fraction": 1.0, "every": 1}'``: every graph copied on every step), to see the trade-offs the
default sits on; write such runs to their own ``--out`` folder.

Run: ``python benchmarks/molecular_adaptation.py --targets esol [--seeds 3 --limit 1000 --balance-ratio 1.0]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from torch_geometric.loader import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import output_dir, save_json  # noqa: E402

import geoadapt  # noqa: E402
from geoadapt.data import load  # noqa: E402
from geoadapt.experiments import adapt_once  # noqa: E402
from geoadapt.groups import SO3  # noqa: E402
from geoadapt.report import table  # noqa: E402

TARGETS = "rdkit_chembl2321810,esol,lipophilicity,bbbp"
METHODS = "finetune,augment,regularizer,constrained,canonicalize,frame_average"


def mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None]
    if not values:
        return float("nan"), float("nan")
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(runs: list[dict], classification: bool) -> dict[str, dict]:
    """Per method: mean and std of each column over seeds, and how often the constraint held."""
    keys = ["roc_auc", "accuracy", "moved_roc_auc"] if classification else ["rmse", "r2", "moved_rmse"]
    keys += ["equivariance_error", "equivariance_score", "seconds", "abs"]
    if classification:
        keys.append("consistency")
    out = {}
    for method in dict.fromkeys(r["method"] for r in runs):
        mine = [r for r in runs if r["method"] == method]
        row = {}
        for key in keys:
            if key == "seconds":
                values = [r["seconds"] for r in mine]
            elif key == "abs":
                values = [sum(v for k, v in r["metrics"].items() if k.startswith("equivariance_abs/")) for r in mine]
            else:
                values = [r["metrics"].get(key) for r in mine]
            row[key] = mean_std(values)
        met = [c["met"] for r in mine for c in r["constraints"]]
        row["constraint_met"] = f"{sum(met)}/{len(met)}" if met else "-"
        out[method] = row
    return out


def section(target: str, backbone: str, summary: dict, classification: bool, sizes: str, epochs: int, seeds: int):
    """The markdown table of one target and backbone, with the promise checks under it."""
    base = summary.get("finetune")
    metric = "roc_auc" if classification else "rmse"
    fmt = lambda v, f=".3f": f"{v[0]:{f}} ± {v[1]:{f}}"  # noqa: E731
    rows = []
    for method, s in summary.items():
        row = [method, fmt(s[metric]), fmt(s[f"moved_{metric}"])]
        row += [fmt(s["accuracy"])] if classification else []
        row += [fmt(s["abs"], ".1e"), fmt(s["equivariance_error"], ".1e"), f"{s['equivariance_score'][0]:.4f}"]
        row += [f"{s['consistency'][0]:.3f}"] if classification else []
        ratio = f"{s['seconds'][0] / base['seconds'][0]:.2f}x" if base else "-"
        row += [s["constraint_met"], f"{s['seconds'][0]:.0f}", ratio]
        rows.append(row)
    name = "ROC-AUC" if classification else "RMSE"
    header = ["method", name, f"{name} moved"] + (["accuracy"] if classification else [])
    header += ["SO(3) abs error", "SO(3) rel. error", "SO(3) score"] + (["consistency"] if classification else [])
    header += ["constraint met", "time s", "time ratio"]
    text = f"#### {target}, {backbone} naive GNN ({sizes}, {epochs} epochs, {seeds} seeds)\n\n" + table(header, rows)
    checks = {}
    if base:
        for method in ("regularizer", "constrained"):
            if method in summary:
                s = summary[method]
                cut = base["equivariance_error"][0] / max(s["equivariance_error"][0], 1e-300)
                gap = s[metric][0] - base[metric][0]
                within = abs(gap) <= max(base[metric][1], 1e-12) or (gap > 0) == classification
                checks[method] = {"error_cut": cut, "metric_change": gap, "within_one_std_or_better": within}
                text += (
                    f"\n\n{method}: SO(3) error cut {cut:.1f}x against fine-tuning; {metric} "
                    f"{'+' if gap >= 0 else ''}{gap:.3f} (fine-tuning's std {base[metric][1]:.3f}): "
                    f"{'within one std or better' if within else 'worse than one std'}"
                )
    return text, checks


def regularizer_options(text: str) -> dict:
    """``--regularizer-options``: a JSON object of ``EquivarianceRegularizer`` keyword arguments."""
    try:
        options = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r} ({error.msg})") from None
    if not isinstance(options, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return options


def run_target(args, target: str, out_dir: Path, checkpoint: Path | None) -> dict:
    limit = 80 if args.quick else args.limit
    parts = [load(target, split=s, limit=limit, progress=False) for s in ("train", "val", "test")]
    task = parts[0].task
    classification = task == "classification"
    loaders = [
        DataLoader(parts[0].graphs, batch_size=32, shuffle=True),
        DataLoader(parts[1].graphs, batch_size=256),
        DataLoader(parts[2].graphs, batch_size=256),
    ]
    sizes = f"{len(parts[0])}/{len(parts[1])}/{len(parts[2])} train/val/test"
    options = dict(args.regularizer_options)
    if args.balance_ratio is not None:
        options["balance_ratio"] = args.balance_ratio
    record = {"target": target, "task": task, "sizes": sizes, "epochs": args.epochs, "backbones": {}}
    if options:
        record["regularizer_options"] = options
    if args.merge:  # every method rerun by a merge so far, this one's included
        path = out_dir / f"molecular_adaptation_{target}.json"
        before = json.loads(path.read_text()).get("merged_methods", []) if path.is_file() else []
        record["merged_methods"] = list(dict.fromkeys(before + args.methods.split(",")))
    texts = []
    for backbone in args.backbones.split(","):
        source = str(checkpoint) if backbone == "pretrained" else None
        runs = []
        for seed in range(args.seeds):
            for method in args.methods.split(","):
                r = adapt_once(
                    method,
                    source,
                    loaders,
                    seed,
                    args.epochs,
                    1e-3,
                    groups=[SO3()],
                    task=task,
                    regularizer_options=options,
                )
                runs.append(
                    {
                        "method": method,
                        "seed": seed,
                        "metrics": r.metrics,
                        "seconds": r.seconds,
                        "constraints": r.trainer.constraints,
                        "warnings": r.trainer.warnings,
                    }
                )
                print(f"{target} {backbone} seed {seed} {method}: {r.seconds:.0f} s", flush=True)
        if args.merge:
            runs = merged(out_dir, target, backbone, runs, args.methods.split(","))
        summary = summarize(runs, classification)
        text, checks = section(target, backbone, summary, classification, sizes, args.epochs, args.seeds)
        if options:
            text += f"\n\nregularizer options: {json.dumps(options, sort_keys=True)}"
        if args.merge:
            text += (
                f"\n\nrerun with --merge: {', '.join(record['merged_methods'])} (their wall times come from another "
                "run than the other rows': compare times within one run only)"
            )
        print(text + "\n", flush=True)
        texts.append(text)
        record["backbones"][backbone] = {"summary": summary, "checks": checks, "runs": runs}
    (out_dir / f"molecular_adaptation_{target}.md").write_text("\n\n".join(texts) + "\n")
    save_json(f"molecular_adaptation_{target}", {"benchmark": "molecular_adaptation", **record}, out_dir)
    return record


def merged(out_dir: Path, target: str, backbone: str, runs: list[dict], methods: list[str]) -> list[dict]:
    """``--merge``: the runs of ``methods`` replace theirs in the target's saved JSON, the other methods' runs stay
    (for a change that only touches some methods: the rest would reproduce the same numbers)."""
    path = out_dir / f"molecular_adaptation_{target}.json"
    if not path.is_file():
        raise SystemExit(f"--merge: expected {path} to merge into, found none")
    kept = [r for r in json.loads(path.read_text())["backbones"][backbone]["runs"] if r["method"] not in methods]
    order = {m: i for i, m in enumerate(METHODS.split(","))}
    return sorted(kept + runs, key=lambda r: (r["seed"], order.get(r["method"], len(order))))


def report(out_dir: Path) -> None:
    """Print every target's tables found in ``out_dir``."""
    for path in sorted(out_dir.glob("molecular_adaptation_*.md")):
        print(path.read_text())
    kept: dict[str, list[bool]] = {}
    for path in sorted(out_dir.glob("molecular_adaptation_*.json")):
        data = json.loads(path.read_text())
        for backbone, result in data.get("backbones", {}).items():
            for method, check in result["checks"].items():
                print(
                    f"{data['target']:22s} {backbone:10s} {method:12s} error cut {check['error_cut']:6.1f}x  "
                    f"metric change {check['metric_change']:+.3f}  within: {check['within_one_std_or_better']}"
                )
                kept.setdefault(method, []).append(check["error_cut"] >= 10 and check["within_one_std_or_better"])
    for method, met in kept.items():
        print(f"{method}: a 10x cut within one std on {sum(met)} of {len(met)} target/backbone pairs")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=TARGETS)
    parser.add_argument("--methods", default=METHODS)
    parser.add_argument("--backbones", default="pretrained,scratch")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--source-molecules", type=int, default=4999)
    parser.add_argument("--pretrain-epochs", type=int, default=30)
    parser.add_argument("--limit", type=int, default=None, help="first N molecules per target")
    parser.add_argument("--balance-ratio", type=float, default=None, help="fixed regularizer gradient ratio")
    parser.add_argument(
        "--regularizer-options", type=regularizer_options, default={}, help="JSON options of the regularizers"
    )
    parser.add_argument("--report", action="store_true", help="print the tables already in the output folder")
    parser.add_argument("--merge", action="store_true", help="rerun --methods only; keep the other methods' runs")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.source_molecules, args.pretrain_epochs, args.epochs = 2, 80, 1, 1
        args.targets, args.methods = "rdkit_chembl2321810", "finetune,regularizer,constrained"
    out_dir = output_dir(args)
    if args.report:
        report(out_dir)
        return {}
    checkpoint = None
    if "pretrained" in args.backbones.split(","):
        checkpoint = out_dir / f"pretrained_naive_gnn_nci{args.source_molecules}_{args.pretrain_epochs}.pt"
        if not checkpoint.is_file() or args.quick:
            geoadapt.pretrain(
                "naive_gnn", "rdkit_nci5k", checkpoint, epochs=args.pretrain_epochs, limit=args.source_molecules,
                lr=3e-3, batch_size=64, augment="so3", seed=0, progress=False,
            )  # fmt: skip
    records = [run_target(args, target, out_dir, checkpoint) for target in args.targets.split(",")]
    return {"targets": records}


if __name__ == "__main__":
    main()
