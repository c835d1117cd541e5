"""The molecular demo (``python -m geoadapt.demo molecules``): a coordinate-naive GNN pretrained on NCI molecules with
rotation augmentation, adapted to ChEMBL activity three ways (fine-tuning, the regularizer, the constraint) and
compared; ``--report``: an equivariance report of three untrained models under several groups, on real molecules.

Molecules of the report: the first ``--molecules`` SMILES of rdkit's own ``Data/NCI/first_5K.smi``, with ETKDG + MMFF
conformers. Models (untrained, so the report shows what the architecture guarantees): an e3nn
tensor-product network (scalar + vector outputs), a PyG GIN and a coordinate-naive GNN.
"""

from __future__ import annotations

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

    from tqdm.auto import tqdm

    from geoadapt.experiments import adapt_once

    out_dir.mkdir(parents=True, exist_ok=True)
    steps = tqdm(total=2 + len(methods), desc="demo", disable=None)
    steps.set_postfix_str("pretraining on NCI TPSA")
    checkpoint = out_dir / "pretrained_naive_gnn.pt"
    source_metrics = _pretrain_source(checkpoint, source_molecules, pretrain_epochs, seed)
    steps.update()
    steps.set_postfix_str("loading ChEMBL2321810")
    parts, loaders = _target(target_sample)
    steps.update()
    results = []
    for method in methods:
        steps.set_postfix_str(f"adapting: {method}")
        results.append(adapt_once(method, str(checkpoint), loaders, seed, adapt_epochs, 1e-3))
        steps.update()
    steps.close()
    _plot_methods(results, loaders[2], out_dir)
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
    return intro + "\n\n" + _comparison_table(results)


def _pretrain_source(checkpoint: Path, molecules: int, epochs: int, seed: int) -> dict[str, float]:
    """Pretrain naive_gnn on the first NCI molecules (TPSA) with SO(3) augmentation; its validation metrics."""
    import geoadapt

    _, metrics = geoadapt.pretrain(
        "naive_gnn", "rdkit_nci5k", checkpoint, epochs=epochs, limit=molecules, lr=3e-3, batch_size=64,
        augment="so3", seed=seed, progress=False,
    )  # fmt: skip
    return metrics


def _target(sample: int | None) -> tuple[list, list]:
    """ChEMBL2321810's train, validation and test parts (``sample`` molecules drawn across the file) and loaders."""
    from torch_geometric.loader import DataLoader

    from geoadapt.data import load

    parts = [load("rdkit_chembl2321810", split=s, sample=sample, progress=False) for s in ("train", "val", "test")]
    loaders = [
        DataLoader(parts[0].graphs, batch_size=32, shuffle=True),
        DataLoader(parts[1].graphs, batch_size=256),
        DataLoader(parts[2].graphs, batch_size=256),
    ]
    return parts, loaders


def _comparison_table(results: list) -> str:
    """One row per method: test metrics, equivariance and time (relative to the first method's)."""
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
    return table(header, rows)


def _plot_methods(results: list, test_loader, out_dir: Path) -> None:
    """``equivariance_error.png`` (SO(3) error per epoch) and ``error_vs_angle.png`` (on the first test batch) of
    every method; each method's curve also goes into its notes."""
    import math

    from geoadapt.metrics import error_vs_angle
    from geoadapt.plots import curves_figure, epoch_curves, error_vs_angle_figure, save_figures
    from geoadapt.structure import concat

    key = "val_equivariance_error/SO3"
    per_epoch = {r.method: epoch_curves(r.history, [key])[key] for r in results}
    figures = {"equivariance_error.png": curves_figure(per_epoch, "epoch", "SO(3) error (validation)", log=True)}
    angles = torch.linspace(0, math.pi, 13)[1:]  # 0 degrees is exact by definition
    probe = concat([b for b, _ in zip(test_loader, range(1))])
    by_angle = {}
    for r in results:
        errors = error_vs_angle(r.predictor(), probe, r.trainer.spec, angles)
        r.notes["error_vs_angle"] = dict(zip([round(math.degrees(a)) for a in angles.tolist()], errors.tolist()))
        by_angle[r.method] = (angles.tolist(), errors.tolist())
    figures["error_vs_angle.png"] = error_vs_angle_figure(by_angle, "the outputs' spread", "test molecules", log=True)
    save_figures(out_dir, figures)


def run(args) -> None:
    """The molecular story (``args.report``: the report of untrained models), printed; files in ``args.out``."""
    if args.report:
        print(equivariance_table(args.molecules, args.samples))
        return
    if args.quick:
        print(adaptation_story(args.out, source_molecules=120, pretrain_epochs=2, adapt_epochs=2, target_sample=120))
    else:
        print(adaptation_story(args.out))
    print(f"\nwrote {args.out}/summary.json and plots")
