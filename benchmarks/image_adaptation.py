"""Images through the shared group API: a CNN pretrained on digits with C4 augmentation, adapted upright-only.

Methods: fine-tuning, augmentation, group averaging (C4), canonicalization (C4 scorer + prior), the
equivariance regularizer (KL on logits) and its constrained form. Columns: accuracy on the upright test
set, on the test set moved (each image turned by a random multiple of 90°) and C4-averaged over rotated test
sets, prediction consistency and equivariance score under C4,
wall time; mean ± std over seeds. Also accuracy vs rotation angle (0-360°, interpolated between
multiples of 90°). Writes results/image_adaptation.{json,md,png}.

Run: ``python benchmarks/image_adaptation.py [--seeds 3]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import output_dir, save_json  # noqa: E402

from geoadapt.adapt.augment import Augmentation  # noqa: E402
from geoadapt.data import load  # noqa: E402
from geoadapt.groups import Cyclic  # noqa: E402
from geoadapt.metrics import group_averaged_accuracy  # noqa: E402
from geoadapt.models import build  # noqa: E402
from geoadapt.plots import curves_figure, save_figures  # noqa: E402
from geoadapt.regularizers import ConstrainedEquivarianceRegularizer, EquivarianceRegularizer  # noqa: E402
from geoadapt.report import table  # noqa: E402
from geoadapt.train import Trainer  # noqa: E402

METHODS = {
    "finetune": ("finetune", None),
    "augment": ("augment", None),
    "group_average": ("group_average", None),
    "canonicalize": ("canonicalize", None),
    "regularizer": ("finetune", "plain"),
    "constrained": ("finetune", "constrained"),
}


def regularizers(kind, spec):
    if kind is None:
        return []
    term = EquivarianceRegularizer(Cyclic(4), spec, distance="kl", weight=1.0)
    if kind == "plain":
        return [term]
    return [ConstrainedEquivarianceRegularizer(term, epsilon=1e-3)]


def accuracy(model, images, labels) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(images).argmax(-1) == labels).float().mean())


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--pretrain-epochs", type=int, default=25)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--upright", type=int, default=300, help="upright training images for adaptation")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.pretrain_epochs, args.epochs, args.upright = 1, 1, 1, 64
    out_dir = output_dir(args)
    out_dir.mkdir(parents=True, exist_ok=True)
    group = Cyclic(4)
    train, val, test = (load("digits", split=s) for s in ("train", "val", "test"))
    if args.quick:
        test = test[torch.arange(64)]
    # Pretraining: every train image, random C4 rotations (the source model is approximately C4 invariant).
    torch.manual_seed(0)
    source = build("cnn")
    pre = Trainer(
        source,
        "classification",
        strategy="augment",
        groups=[group],
        max_epochs=args.pretrain_epochs,
        lr=3e-3,
        progress=not args.quick,
        eq_samples=None,
    )
    pre.fit(torch.utils.data.DataLoader(train, batch_size=64, shuffle=True))
    source_state = {k: v.clone() for k, v in source.state_dict().items()}
    source_c4 = group_averaged_accuracy(source, test.images, test.labels, group, source.spec)
    # Adaptation: only the first `upright` training images, never rotated (a new task distribution).
    adapt_set = train[torch.arange(args.upright)]
    loader = torch.utils.data.DataLoader(adapt_set, batch_size=32, shuffle=True)
    angles = list(range(0, 361, 15))
    runs = []
    for seed in range(args.seeds):
        for method, (strategy, kind) in METHODS.items():
            torch.manual_seed(seed)
            model = build("cnn")
            model.load_state_dict(source_state)
            trainer = Trainer(
                model,
                "classification",
                regularizers(kind, model.spec),
                strategy=strategy,
                groups=[group],
                max_epochs=args.epochs,
                lr=1e-3,
                seed=seed,
                progress=False,
                eq_samples=None,
            )
            start = time.perf_counter()
            trainer.fit(loader)
            seconds = time.perf_counter() - start
            metrics = trainer.evaluate([(test.images, test.labels)])
            predictor = trainer.model
            c4 = group_averaged_accuracy(predictor, test.images, test.labels, group, model.spec)
            by_angle = [accuracy(predictor, test.rotated(a).images, test.labels) for a in angles]
            # Moved test data: each test image turned by a random element of C4 (seeded), as the other tables do.
            moved_images = Augmentation(group, model.spec)(test.images, torch.Generator().manual_seed(seed))
            moved = accuracy(predictor, moved_images, test.labels)
            runs.append(
                {
                    "method": method,
                    "seed": seed,
                    "upright": metrics["accuracy"],
                    "moved": moved,
                    "c4": c4,
                    "consistency": metrics["consistency"],
                    "score": metrics["equivariance_score"],
                    "seconds": seconds,
                    "accuracy_by_angle": by_angle,
                }
            )
    rows, summary = [], {}
    base = statistics.mean(r["seconds"] for r in runs if r["method"] == "finetune")
    for method in METHODS:
        chosen = [r for r in runs if r["method"] == method]
        stats = {}
        for key in ("upright", "moved", "c4", "consistency", "score", "seconds"):
            values = [r[key] for r in chosen]
            stats[key] = statistics.mean(values)
            stats[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary[method] = stats
        rows.append(
            [
                method,
                *[
                    f"{stats[k]:.3f} ± {stats[k + '_std']:.3f}"
                    for k in ("upright", "moved", "c4", "consistency", "score")
                ],
                f"{stats['seconds']:.1f}",
                f"{stats['seconds'] / base:.2f}x",
            ]
        )
    text = (
        f"Digits CNN pretrained with C4 augmentation (C4-averaged test accuracy {source_c4:.3f}), adapted on "
        f"{args.upright} upright images, {args.epochs} epochs, {args.seeds} seeds (mean ± std)\n\n"
        + table(
            [
                "method",
                "upright acc",
                "moved acc",
                "C4-averaged acc",
                "C4 consistency",
                "C4 score",
                "time s",
                "time ratio",
            ],
            rows,
        )
    )
    print(text)
    (out_dir / "image_adaptation.md").write_text(text + "\n")
    by_angle = {}
    for method in METHODS:
        curves = [r["accuracy_by_angle"] for r in runs if r["method"] == method]
        by_angle[method] = (angles, [statistics.mean(c[i] for c in curves) for i in range(len(angles))])
    figure = curves_figure(
        by_angle, "rotation (degrees)", "test accuracy", title="digits", what="accuracy vs rotation angle"
    )
    save_figures(out_dir, {"image_adaptation_accuracy_vs_angle.png": figure})
    payload = {
        "benchmark": "image_adaptation",
        "source_c4_accuracy": source_c4,
        "rows": [{"method": m, **s} for m, s in summary.items()],
        "runs": runs,
        "angles": angles,
    }
    print(f"\nsaved {save_json('image_adaptation', payload, out_dir)}")
    return payload


if __name__ == "__main__":
    main()
