"""The guarantee of the constrained regularizer: ``E[R] <= ε`` on held-out validation data, or an early, plain verdict
that it will not hold (and by how much).

Every target and backbone of benchmarks/molecular_adaptation.py (the coordinate-naive GNN pretrained on rdkit's NCI
molecules or from scratch; ChEMBL2321810, ESOL, Lipophilicity, BBBP; a regression set made binary is
``target:binary``), at ε = 1e-3 and 1e-2, each with the multiplier controllers of ``--controllers``
(``kp/ema/floor``: cooper's nuPI with that proportional gain and smoothing, the error clipped below at ``-floor``;
``0/0/1`` is the plain dual ascent geoadapt used before). After every epoch the regularizer's
:meth:`~geoadapt.regularizers.ConstrainedEquivarianceRegularizer.verdict` is read; a run *keeps the guarantee*
when the bound holds at the end, or when a "will NOT be met" verdict came before the last quarter of training,
still stood at the end, and the bound was indeed missed. Columns: met/total at the end, warned early among the
missed, false alarms (warned, then met), the task metric. Writes results/constraint_bounds.{json,md}.

Run: ``python benchmarks/constraint_bounds.py [--controllers 0/0/1,0/0/0.2 --seeds 3 --epochs 15]``.
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
from _promise import binary_parts, pretrained_checkpoint  # noqa: E402

from geoadapt.checkpoints import load as load_model  # noqa: E402
from geoadapt.data import load  # noqa: E402
from geoadapt.groups import SO3  # noqa: E402
from geoadapt.models import build  # noqa: E402
from geoadapt.regularizers import ConstrainedEquivarianceRegularizer, EquivarianceRegularizer  # noqa: E402
from geoadapt.report import table  # noqa: E402
from geoadapt.train import Trainer  # noqa: E402

TARGETS = "rdkit_chembl2321810,esol,lipophilicity,bbbp"


def controller(text: str) -> dict:
    """``kp/ema/floor``: nuPI's proportional gain and smoothing, and the error's lower clip (``dual_floor``)."""
    kp, ema, floor = text.split("/")
    return {"dual_kp": float(kp), "dual_ema": float(ema), "dual_floor": float(floor)}


def one_run(parts, task: str, backbone: str, epsilon: float, control: str, seed: int, args) -> dict:
    """One constrained run, epoch by epoch: the verdict after each, the report at the end."""
    torch.manual_seed(seed)
    model = load_model(str(args.checkpoint)) if backbone == "pretrained" else build("naive_gnn")
    reg = ConstrainedEquivarianceRegularizer(
        EquivarianceRegularizer(SO3(), model.spec), epsilon=epsilon, **controller(control)
    )
    trainer = Trainer(model, task, [reg], groups=[SO3()], max_epochs=args.epochs, lr=1e-3, seed=seed, progress=False)
    train = DataLoader(parts[0], batch_size=32, shuffle=True)
    val = DataLoader(parts[1], batch_size=256)
    verdicts = []
    for epoch in range(args.epochs):
        trainer.fit(train, val, epochs=1)
        verdicts.append(reg.verdict(args.epochs - epoch - 1))
    report = trainer.constraints[0]
    warned = [i for i, v in enumerate(verdicts) if "will NOT" in v]
    early = [i for i in warned if i < args.epochs * 3 // 4]
    metrics = trainer.evaluate(DataLoader(parts[2], batch_size=256))
    return {
        "backbone": backbone,
        "epsilon": epsilon,
        "controller": control,
        "seed": seed,
        "met": report["met"],
        "measured": report["measured"],
        "miss": report["miss"],
        "first_warning": warned[0] if warned else None,
        "warned_early": bool(early) and "will NOT" in verdicts[-1],
        "verdicts": verdicts,
        "measurements": reg.forecast.points,
        "metric": metrics.get("rmse", metrics.get("roc_auc")),
        "multiplier": float(reg.multiplier),
    }


def summarize(runs: list[dict]) -> list[dict]:
    rows = []
    for key in dict.fromkeys((r["target"], r["backbone"], r["epsilon"], r["controller"]) for r in runs):
        mine = [r for r in runs if (r["target"], r["backbone"], r["epsilon"], r["controller"]) == key]
        missed = [r for r in mine if not r["met"]]
        metric = [r["metric"] for r in mine if r["metric"] is not None]
        rows.append(
            {
                **dict(zip(("target", "backbone", "epsilon", "controller"), key)),
                "met": sum(r["met"] for r in mine),
                "runs": len(mine),
                "warned_early": sum(r["warned_early"] for r in missed),
                "false_alarms": sum(r["first_warning"] is not None for r in mine if r["met"]),
                "kept": sum(r["met"] or r["warned_early"] for r in mine),
                "largest_miss": max((r["miss"] for r in missed), default=0.0),
                "metric": statistics.mean(metric) if metric else float("nan"),
                "metric_std": statistics.stdev(metric) if len(metric) > 1 else 0.0,
            }
        )
    return rows


def totals(rows: list[dict]) -> list[dict]:
    """Per controller and ε, over every target and backbone: met, kept (met or warned early), runs."""
    out = []
    for key in dict.fromkeys((r["controller"], r["epsilon"]) for r in rows):
        mine = [r for r in rows if (r["controller"], r["epsilon"]) == key]
        out.append(
            {
                "controller": key[0],
                "epsilon": key[1],
                **{k: sum(r[k] for r in mine) for k in ("met", "kept", "warned_early", "false_alarms", "runs")},
            }
        )
    return out


def markdown(rows: list[dict], sums: list[dict], args) -> str:
    """The per-target table and the totals per controller and ε."""
    header = ["target", "backbone", "ε", "controller", "met", "missed, warned early", "false alarms",
              "largest miss", "task metric"]  # fmt: skip
    body = [[r["target"], r["backbone"], f"{r['epsilon']:g}", r["controller"], f"{r['met']}/{r['runs']}",
             f"{r['warned_early']}/{r['runs'] - r['met']}", r["false_alarms"], f"{r['largest_miss']:.1e}",
             f"{r['metric']:.3f} ± {r['metric_std']:.3f}"] for r in rows]  # fmt: skip
    text = f"Constrained regularizer, {args.epochs} epochs, {args.seeds} seeds\n\n" + table(header, body)
    text += "\n\n" + table(
        ["controller", "ε", "met", "kept (met or warned early)", "false alarms"],
        [
            [
                s["controller"],
                f"{s['epsilon']:g}",
                f"{s['met']}/{s['runs']}",
                f"{s['kept']}/{s['runs']}",
                s["false_alarms"],
            ]
            for s in sums
        ],  # fmt: skip
    )
    return text


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", default=TARGETS)
    parser.add_argument("--backbones", default="pretrained,scratch")
    parser.add_argument("--epsilons", default="1e-3,1e-2")
    parser.add_argument("--controllers", default="0/0/1,0/0/0.2")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--limit", type=int, default=700)
    parser.add_argument("--name", default="constraint_bounds")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.targets, args.backbones, args.seeds, args.epochs, args.limit = "esol", "scratch", 1, 2, 80
        args.controllers = "0/0/0.2"
    out_dir = output_dir(args)
    args.checkpoint = pretrained_checkpoint(out_dir) if "pretrained" in args.backbones else None
    runs = []
    for target in args.targets.split(","):
        name, binary = target.split(":")[0], target.endswith(":binary")
        if binary:
            parts, task = binary_parts(name, args.limit), "classification"
        else:
            loaded = [load(name, split=s, limit=args.limit, progress=False) for s in ("train", "val", "test")]
            parts, task = [list(p.graphs) for p in loaded], loaded[0].task
        for backbone in args.backbones.split(","):
            for epsilon in map(float, args.epsilons.split(",")):
                for seed in range(args.seeds):
                    for control in args.controllers.split(","):  # interleaved: the machine's load hits all alike
                        run = one_run(parts, task, backbone, epsilon, control, seed, args)
                        runs.append({"target": target, **run})
                        print(f"{target} {backbone} ε={epsilon:g} {control} seed {seed}: "
                              f"{'met' if run['met'] else 'MISS'} {run['measured']:.2e} "
                              f"warned {run['first_warning']}", flush=True)  # fmt: skip
    rows = summarize(runs)
    sums = totals(rows)
    text = markdown(rows, sums, args)
    print(text)
    (out_dir / f"{args.name}.md").write_text(text + "\n")
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "quick", "checkpoint")}
    payload = {"benchmark": "constraint_bounds", "settings": settings, "rows": rows, "totals": sums, "runs": runs}
    print(f"\nsaved {save_json(args.name, payload, out_dir)}")
    return payload


if __name__ == "__main__":
    main()
