"""The default's promise on classifiers: never worse than plain training by more than one std, on given and on moved
test data, for one-logit and two-logit heads, from scratch and pretrained.

Sets: BBBP and ChEMBL2321810 made binary (activity above the training median), read by the coordinate-naive GNN
(SO(3); pretrained on rdkit's NCI molecules with SO(3) augmentation, as in benchmarks/molecular_adaptation.py, or
from scratch); MUTAG and PTC_MR read by a GIN with 4 Laplacian eigenvectors (SignFlip; from scratch: no source
set shares their atom types). Methods: plain training, the default regularizer, and the former classifier default
(Jensen-Shannon, ``distance="js"``). "Moved" test data: each test molecule rotated at random, each test graph's
eigenvector signs flipped at random (:func:`geoadapt.experiments.moved_metrics`). Also per run: the epoch a
collapse to one class was detected (:class:`geoadapt.metrics.collapse.CollapseDetector` over the validation rows).
Writes results/promise_classification.{json,md}.

Run: ``python benchmarks/promise_classification.py [--sets bbbp,rdkit_chembl2321810,mutag,ptc_mr --seeds 3]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch_geometric.loader import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import output_dir, save_json  # noqa: E402
from _promise import binary_parts, pretrained_checkpoint, promise_check  # noqa: E402

from geoadapt.checkpoints import load as load_model  # noqa: E402
from geoadapt.data import load  # noqa: E402
from geoadapt.data.graphs import add_laplacian_pe, stratified_folds  # noqa: E402
from geoadapt.experiments import moved_metrics  # noqa: E402
from geoadapt.groups import SO3, SignFlip  # noqa: E402
from geoadapt.metrics.collapse import CollapseDetector  # noqa: E402
from geoadapt.models import build  # noqa: E402
from geoadapt.regularizers import EquivarianceRegularizer  # noqa: E402
from geoadapt.report import table  # noqa: E402
from geoadapt.spec import Spec  # noqa: E402
from geoadapt.train import Trainer  # noqa: E402

TU_SETS = ("mutag", "ptc_mr")
METHODS = {"plain": None, "default": {}, "js": {"distance": "js"}}
HISTORY_KEYS = ("epoch", "val_predicted_majority", "val_label_majority", "val_recall", "val_roc_auc")


def with_head(model: nn.Module, classes: int) -> nn.Module:
    """``model`` with a fresh last layer of ``classes`` logits (a pretrained regression head has one output)."""
    last = model.head[-1]
    if last.out_features != classes:
        model.head[-1] = nn.Linear(last.in_features, classes)
        model.spec = Spec.from_dict({**model.spec.to_dict(), "output": f"{classes}x0e"})
    return model


def tu_parts(name: str, fold: int) -> list[list]:
    """Train, val and test graphs of fold ``fold`` of a TU set (stratified 10-fold), with 4 Laplacian eigenvectors."""
    graphs = [add_laplacian_pe(g, k=4) for g in load(name)]
    labels = torch.cat([g.y.reshape(-1) for g in graphs])
    split = stratified_folds(labels, 10, seed=0)[fold]
    return [[graphs[i] for i in split[part]] for part in ("train", "val", "test")]


def one_run(parts, setting: dict, method: str, seed: int, args) -> dict:
    """Train one model; test metrics on given and moved data, the collapse detector's verdict, the wall time."""
    torch.manual_seed(seed)
    tu = setting["set"] in TU_SETS
    if tu:
        x = parts[0][0]
        model = build("gin", in_dim=x.x.shape[1], edge_dim=0, out_dim=setting["classes"], hidden=32, num_layers=4,
                      dropout=0.5, pe="eigvecs", pe_dim=x.eigvecs.shape[1])  # fmt: skip
        group, lr, epochs = SignFlip(), 0.01, args.tu_epochs
    else:
        pretrained = setting["backbone"] == "pretrained"
        model = load_model(str(args.checkpoint)) if pretrained else build("naive_gnn", out_dim=setting["classes"])
        model = with_head(model, setting["classes"])
        group, lr, epochs = SO3(), 1e-3, args.epochs
    options = METHODS[method]
    regs = [] if options is None else [EquivarianceRegularizer(group, model.spec, **options, **args.options)]
    trainer = Trainer(model, "classification", regs, groups=[group], max_epochs=epochs, lr=lr, seed=seed,
                      progress=False, eq_samples=4)  # fmt: skip
    loaders = [DataLoader(parts[0], batch_size=32, shuffle=True)] + [DataLoader(p, batch_size=256) for p in parts[1:]]
    start = time.perf_counter()
    trainer.fit(loaders[0], loaders[1])
    seconds = time.perf_counter() - start
    metrics = trainer.evaluate(loaders[2])
    metrics.update(moved_metrics(trainer, loaders[2], group, seed))
    collapse = CollapseDetector().check(trainer.history)
    return {
        **setting,
        "method": method,
        "seed": seed,
        "metrics": metrics,
        "seconds": seconds,
        "collapse_epoch": None if collapse is None else collapse.start,
        "collapse": None if collapse is None else collapse.message(),
        "history": [{k: row.get(k) for k in HISTORY_KEYS} for row in trainer.history],
        "warnings": trainer.warnings,
    }


def settings(args) -> list[dict]:
    out = []
    for name in args.sets.split(","):
        backbones = ["scratch"] if name in TU_SETS else args.backbones.split(",")
        for backbone in backbones:
            for classes in (1, 2):
                out.append({"set": name, "backbone": backbone, "classes": classes})
    return out


def summarize(runs: list[dict]) -> list[dict]:
    """One row per (set, backbone, head, method): mean and std over seeds, and the promise against plain."""
    keys = ("roc_auc", "moved_roc_auc", "accuracy", "moved_accuracy", "equivariance_error")
    rows = []
    for key in dict.fromkeys((r["set"], r["backbone"], r["classes"], r["method"]) for r in runs):
        mine = [r for r in runs if (r["set"], r["backbone"], r["classes"], r["method"]) == key]
        row = dict(zip(("set", "backbone", "classes", "method"), key))
        for k in keys:
            values = [r["metrics"][k] for r in mine if r["metrics"].get(k) is not None]
            row[k] = statistics.mean(values) if values else float("nan")
            row[f"{k}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        row["collapsed"] = sum(r["collapse_epoch"] is not None for r in mine)
        row["runs"] = len(mine)
        rows.append(row)
    for row in rows:
        plain = next(
            p for p in rows if p["method"] == "plain" and all(p[k] == row[k] for k in ("set", "backbone", "classes"))
        )
        row.update(promise_check(row, plain))
    return rows


def markdown(rows: list[dict], args) -> str:
    header = ["set", "backbone", "head", "method", "ROC-AUC given", "ROC-AUC moved", "accuracy given",
              "accuracy moved", "rel. error", "error cut", "collapsed", "promise"]  # fmt: skip
    fmt = lambda r, k: f"{r[k]:.3f} ± {r[k + '_std']:.3f}"  # noqa: E731
    body = [
        [
            r["set"],
            r["backbone"],
            f"{r['classes']} logit{'s' if r['classes'] > 1 else ''}",
            r["method"],
            fmt(r, "roc_auc"),
            fmt(r, "moved_roc_auc"),
            fmt(r, "accuracy"),
            fmt(r, "moved_accuracy"),
            f"{r['equivariance_error']:.2e}",
            f"{r['error_cut']:.1f}x",
            f"{r['collapsed']}/{r['runs']}",
            "-" if r["method"] == "plain" else ("kept" if r["kept"] else "BROKEN"),
        ]  # fmt: skip
        for r in rows
    ]
    return (
        f"Classifiers, {args.seeds} seeds (mean ± std); molecules {args.epochs} epochs, TU sets {args.tu_epochs}; "
        "promise: ROC-AUC on given and on moved test data not below plain's by more than plain's std\n\n"
        + table(header, body)
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="bbbp,rdkit_chembl2321810,mutag,ptc_mr")
    parser.add_argument("--backbones", default="scratch,pretrained")
    parser.add_argument("--methods", default="plain,default")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--tu-epochs", type=int, default=50)
    parser.add_argument("--limit", type=int, default=700, help="first N molecules of a molecule set")
    parser.add_argument("--options", type=json.loads, default={}, help="JSON options of every regularizer")
    parser.add_argument("--name", default="promise_classification", help="output file name")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.sets, args.seeds, args.epochs, args.tu_epochs, args.limit = "rdkit_chembl2321810,mutag", 2, 1, 1, 80
        args.backbones = "scratch"
    out_dir = output_dir(args)
    args.checkpoint = pretrained_checkpoint(out_dir) if "pretrained" in args.backbones else None
    runs, cache = [], {}
    for setting in settings(args):
        for seed in range(args.seeds):
            name = setting["set"]
            if name in TU_SETS:
                parts = cache.setdefault((name, seed), tu_parts(name, seed))
            else:
                parts = cache.setdefault(name, binary_parts(name, args.limit))
            for method in args.methods.split(","):
                runs.append(one_run(parts, setting, method, seed, args))
                r = runs[-1]
                auc, moved = (r["metrics"].get(k, float("nan")) for k in ("roc_auc", "moved_roc_auc"))
                print(f"{name} {setting['backbone']} {setting['classes']} {method} seed {seed}: "
                      f"ROC-AUC {auc:.3f} moved {moved:.3f} ({r['seconds']:.0f} s)", flush=True)  # fmt: skip
    rows = summarize(runs)
    text = markdown(rows, args)
    print(text)
    (out_dir / f"{args.name}.md").write_text(text + "\n")
    settings_json = {k: v for k, v in vars(args).items() if k not in ("out", "quick", "checkpoint")}
    payload = {"benchmark": "promise_classification", "settings": settings_json, "rows": rows, "runs": runs}
    print(f"\nsaved {save_json(args.name, payload, out_dir)}")
    return payload


if __name__ == "__main__":
    main()
