"""`make demo`: an equivariance report of three models under several groups, on real molecules.

Molecules: the first ``--molecules`` SMILES of rdkit's own ``Data/NCI/first_5K.smi``, with ETKDG + MMFF
conformers. Models (untrained, so the report shows what the architecture guarantees): an e3nn
tensor-product network (scalar + vector outputs), a PyG GIN and a coordinate-naive GNN.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from torch_geometric.data import Batch

from geoadapt.data.molecules import build_molecules
from geoadapt.data.rdkit_sets import read_nci5k
from geoadapt.groups import E3, O3, SO3, Permutation, Translation
from geoadapt.metrics import equivariance_report
from geoadapt.models import build
from geoadapt.report import table


def equivariance_table(num_molecules: int = 64, n_samples: int = 8, seed: int = 0) -> str:
    """Build the report as a markdown table (one row per model and group)."""
    smiles, tpsa = read_nci5k()
    data = build_molecules(
        "rdkit_nci5k_demo", smiles[:num_molecules], [[v] for v in tpsa[:num_molecules]], progress=False
    )
    batch = Batch.from_data_list(data.graphs)
    torch.manual_seed(seed)
    models = {
        "e3nn_gnn (0e+1o)": build("e3nn_gnn", output="0e+1o"),
        "gin": build("gin"),
        "naive_gnn": build("naive_gnn"),
    }
    groups = [SO3(), O3(), Translation(scale=2.0), E3(), Permutation(), Permutation() * E3()]
    rows = []
    for name, model in models.items():
        for group in groups:
            start = time.perf_counter()
            rep = equivariance_report(model, batch, group, model.spec, n_samples, torch.Generator().manual_seed(seed))
            rows.append([name, *rep.as_row()[:4], f"{1000 * (time.perf_counter() - start):.0f}"])
    header = ["model", "group", "mean error", "max error", "score", "ms"]
    intro = (
        f"Equivariance of untrained models on {len(data)} NCI molecules (rdkit conformers), "
        f"{n_samples} group samples per molecule, float32.\n{data.summary()}\n"
    )
    return intro + "\n" + table(header, rows)


def adaptation_story(
    out_dir: Path,
    source_molecules: int = 300,
    pretrain_epochs: int = 15,
    adapt_epochs: int = 12,
    methods: tuple[str, ...] = ("finetune", "regularizer", "constrained"),
    seed: int = 0,
    target_sample: int | None = 450,
) -> str:
    """Pretrain on NCI TPSA (with rotation augmentation), adapt to ChEMBL activity with several methods.

    ``target_sample`` ChEMBL2321810 molecules are drawn across the file (``None``: all 1017); the first rows
    of the file are one series and would not be representative.

    Writes ``summary.json``, ``equivariance_error.png`` and ``error_vs_angle.png`` to ``out_dir``; returns
    the comparison table.
    """
    import json
    import math

    from torch_geometric.loader import DataLoader
    from tqdm.auto import tqdm

    import geoadapt
    from geoadapt.data import load
    from geoadapt.experiments import adapt_once
    from geoadapt.metrics import error_vs_angle
    from geoadapt.structure import concat

    out_dir.mkdir(parents=True, exist_ok=True)
    steps = tqdm(total=2 + len(methods), desc="demo", disable=None)
    steps.set_postfix_str("pretraining on NCI TPSA")
    checkpoint = out_dir / "pretrained_naive_gnn.pt"
    _, source_metrics = geoadapt.pretrain(
        "naive_gnn",
        "rdkit_nci5k",
        checkpoint,
        epochs=pretrain_epochs,
        limit=source_molecules,
        lr=3e-3,
        batch_size=64,
        augment="so3",
        seed=seed,
        progress=False,
    )
    steps.update()
    steps.set_postfix_str("loading ChEMBL2321810")
    splits = ("train", "val", "test")
    parts = [load("rdkit_chembl2321810", split=s, sample=target_sample, progress=False) for s in splits]
    loaders = [
        DataLoader(parts[0].graphs, batch_size=32, shuffle=True),
        DataLoader(parts[1].graphs, batch_size=256),
        DataLoader(parts[2].graphs, batch_size=256),
    ]
    steps.update()
    results = []
    for method in methods:
        steps.set_postfix_str(f"adapting: {method}")
        results.append(adapt_once(method, str(checkpoint), loaders, seed, adapt_epochs, 1e-3))
        steps.update()
    steps.close()
    base = results[0].seconds
    rows = [
        [
            r.method,
            f"{r.metrics['rmse']:.3f}",
            f"{r.metrics['moved_rmse']:.3f}",
            f"{r.metrics['mae']:.3f}",
            f"{r.metrics['r2']:.3f}",
            f"{r.metrics['equivariance_error/SO3']:.2e}",
            f"{r.metrics['equivariance_error/Permutation()']:.1e}",
            f"{r.metrics['equivariance_score/SO3']:.4f}",
            f"{r.seconds:.1f}",
            f"{r.seconds / base:.2f}x",
        ]
        for r in results
    ]
    # "RMSE moved": on the test molecules each rotated at random (RDKit hands them over in their principal axes).
    header = [
        "method",
        "RMSE",
        "RMSE moved",
        "MAE",
        "R²",
        "SO(3) error",
        "perm error",
        "SO(3) score",
        "time s",
        "time ratio",
    ]
    # Plots: equivariance error per epoch, and error vs rotation angle of each adapted model.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2))
    for r in results:
        ax.plot(
            [h["epoch"] for h in r.history],
            [h["val_equivariance_error/SO3"] for h in r.history],
            marker="o",
            ms=3,
            label=r.method,
        )
    ax.set(xlabel="epoch", ylabel="SO(3) error (validation)", yscale="log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "equivariance_error.png", dpi=110)
    plt.close(fig)
    angles = torch.linspace(0, math.pi, 13)[1:]  # 0 degrees is exact by definition
    probe = concat([b for b, _ in zip(loaders[2], range(1))])
    fig, ax = plt.subplots(figsize=(5, 3.2))
    for r in results:
        errors = error_vs_angle(r.predictor(), probe, r.trainer.spec, angles)
        r.notes["error_vs_angle"] = dict(zip([round(math.degrees(a)) for a in angles.tolist()], errors.tolist()))
        ax.plot(torch.rad2deg(angles).tolist(), errors.tolist(), marker="o", ms=3, label=r.method)
    ax.set(xlabel="rotation about z (degrees)", ylabel="relative error (test)", yscale="log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "error_vs_angle.png", dpi=110)
    plt.close(fig)
    summary = {
        "source": {"dataset": "rdkit_nci5k", "molecules": source_molecules, "metrics": source_metrics},
        "target": "rdkit_chembl2321810",
        "methods": [
            {"method": r.method, "seconds": r.seconds, "metrics": r.metrics, "notes": r.notes, "history": r.history}
            for r in results
        ],
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1, default=float))
    intro = (
        f"Pretrained naive_gnn on {source_molecules} NCI molecules (TPSA, SO(3) augmentation): "
        f"val RMSE {source_metrics['rmse']:.2f}. Adapted to ChEMBL2321810 activity "
        f"({len(parts[0])}/{len(parts[1])}/{len(parts[2])} train/val/test), {adapt_epochs} epochs, seed {seed}."
    )
    return intro + "\n\n" + table(header, rows)


def main(argv: list[str] | None = None) -> None:
    """Run the demo: the adaptation story (default) or the equivariance report of untrained models."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", action="store_true", help="only the equivariance report of untrained models")
    parser.add_argument("--molecules", type=int, default=64, help="molecules in the report")
    parser.add_argument("--samples", type=int, default=8, help="group samples per molecule in the report")
    parser.add_argument("--quick", action="store_true", help="a tiny adaptation story (for tests)")
    # runs/ is not tracked: the demo never rewrites files of the repository.
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    args = parser.parse_args(argv)
    if args.report:
        print(equivariance_table(args.molecules, args.samples))
        return
    if args.quick:
        print(adaptation_story(args.out, source_molecules=120, pretrain_epochs=2, adapt_epochs=2, target_sample=120))
    else:
        print(adaptation_story(args.out))
    print(f"\nwrote {args.out}/summary.json and plots")


if __name__ == "__main__":
    main()
