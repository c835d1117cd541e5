"""Why a self-weighted equivariance penalty can push a one-logit classifier to one class: a per-epoch trace.

Trains the coordinate-naive GNN on a molecule set made binary (labels above the training median), with plain
fine-tuning and with the default regularizer, and logs per epoch: the self-set weight, the gradient norms of the
task loss and of the unweighted penalty at each balance (mean over the epoch), the penalty, the mean Bernoulli
variance ``p(1 - p)`` of the validation predictions, the share of the most predicted class, recall and ROC-AUC.
Writes results/classifier_trace.{json,md}.

Run: ``python benchmarks/classifier_trace.py [--target lipophilicity --limit 1000 --epochs 20 --distance js]``.
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
from _promise import binary_parts  # noqa: E402

from geoadapt.checkpoints import load as load_model  # noqa: E402
from geoadapt.groups import group_from_name  # noqa: E402
from geoadapt.metrics.collapse import class_statistics  # noqa: E402
from geoadapt.models import build  # noqa: E402
from geoadapt.regularizers import EquivarianceRegularizer  # noqa: E402
from geoadapt.report import table  # noqa: E402
from geoadapt.train import Trainer  # noqa: E402


def gradient_probe(trainer, reg, batches) -> dict:
    """Over ``batches``: the norms of the task loss's gradient and of the weighted penalty's, over all trainable
    parameters and over the output bias alone (the one parameter that moves every logit together)."""
    model = trainer.model
    params = [p for p in model.parameters() if p.requires_grad]
    bias = model.head[-1].bias
    reg.eval()  # a measurement with gradients: no step counted, every sample copied
    task, penalty = 0.0, 0.0
    for batch in batches:
        out = model(batch)
        task = task + trainer.task.loss(trainer.task.view(model), out, batch.y, batch) / len(batches)
        penalty = penalty + reg(model, batch) / len(batches)  # in eval mode: weight x penalty
    reg.train()
    out = {}
    for name, value in (("task", task), ("penalty", penalty)):
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        out[f"probe_{name}_grad"] = float(torch.sqrt(sum(g.pow(2).sum() for g in grads if g is not None)))
        (g_bias,) = torch.autograd.grad(value, [bias], retain_graph=True)
        out[f"probe_{name}_bias_grad"] = float(g_bias.reshape(-1)[-1])
    return out


def trace_run(parts, method: str, seed: int, epochs: int, options: dict, checkpoint: str | None, args) -> list[dict]:
    """Per-epoch rows of one run (``method``: ``plain`` or ``regularizer``)."""
    torch.manual_seed(seed)
    model = load_model(checkpoint) if checkpoint else build("naive_gnn", center=not args.uncentered)
    group = group_from_name(args.group)
    regs, norms = [], []
    if method == "regularizer":
        reg = EquivarianceRegularizer(group, model.spec, **options)
        balance = reg.balance

        def recording(task_norm: float, penalty_norm: float, *rest: float) -> None:
            norms.append((task_norm, penalty_norm))
            balance(task_norm, penalty_norm, *rest)

        reg.balance = recording  # a trace only: records the norms the weight is set from
        regs = [reg]
    trainer = Trainer(
        model, "classification", regs, groups=[group], max_epochs=epochs, seed=seed, progress=False, lr=args.lr
    )
    train = DataLoader(parts[0], batch_size=32, shuffle=True)
    val = list(DataLoader(parts[1], batch_size=256))
    probe_batches = list(DataLoader(parts[0][:256], batch_size=128))
    rows = []
    for _ in range(epochs):
        seen = len(norms)
        trainer.fit(train, val, epochs=1)
        row = trainer.history[-1]
        with torch.no_grad():
            predictor = trainer.predictor()
            logits = torch.cat([predictor(b) for b in val])
            p = torch.sigmoid(logits[:, -1])
        stats = class_statistics(logits, torch.cat([b.y.reshape(-1) for b in val]))
        trainer.model.train()
        probe = gradient_probe(trainer, regs[0], probe_batches) if regs else {}
        mine = norms[seen:]
        rows.append(
            {
                "epoch": row["epoch"],
                "weight": next((v for k, v in row.items() if k.endswith("/weight")), 0.0),
                "task_grad": statistics.mean(t for t, _ in mine) if mine else None,
                "penalty_grad": statistics.mean(q for _, q in mine) if mine else None,
                "penalty": next((v for k, v in row.items() if k.startswith("train_penalty/")), 0.0),
                "task_loss": row["train_task_loss"],
                "bernoulli_variance": float((p * (1 - p)).mean()),
                "share": row["val_predicted_majority"],
                "label_share": row["val_label_majority"],
                "recall": row["val_recall"],
                "min_class_recall": stats["min_class_recall"],
                "mean_logit": float(logits[:, -1].mean()),
                **probe,
                "roc_auc": row.get("val_roc_auc"),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="lipophilicity")
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--options", default="{}", help="JSON options of the regularizer")
    parser.add_argument("--tag", default="")
    parser.add_argument("--group", default="so3")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--uncentered", action="store_true", help="the model reads raw, uncentered coordinates")
    parser.add_argument("--pretrained", default=None, help="checkpoint to start from (default: from scratch)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    import json

    options = json.loads(args.options)
    if args.quick:
        args.target, args.limit, args.epochs = "esol", 120, 2
    parts = binary_parts(args.target, args.limit)
    runs = {
        m: trace_run(parts, m, args.seed, args.epochs, options, args.pretrained, args) for m in ("plain", "regularizer")
    }
    keys = ["weight", "task_grad", "penalty_grad", "probe_task_grad", "probe_penalty_grad", "probe_task_bias_grad"]
    keys += ["probe_penalty_bias_grad", "penalty", "mean_logit"]
    keys += ["bernoulli_variance", "share", "label_share", "min_class_recall", "roc_auc"]
    fmt = lambda v: "-" if v is None else f"{v:.3g}"  # noqa: E731
    text = []
    for method, rows in runs.items():
        body = [[r["epoch"], *(fmt(r.get(k)) for k in keys)] for r in rows]
        text.append(f"{method} ({args.target} binary, {options or 'defaults'})\n\n" + table(["epoch", *keys], body))
    print("\n\n".join(text))
    out_dir = output_dir(args)
    name = "classifier_trace" + (f"_{args.tag}" if args.tag else "")
    (out_dir / f"{name}.md").write_text("\n\n".join(text) + "\n")
    payload = {"benchmark": "classifier_trace", "target": args.target, "options": options, "runs": runs}
    save_json(name, payload, out_dir)
    return payload


if __name__ == "__main__":
    main()
