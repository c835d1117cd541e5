"""SevenNet-0, a pretrained interatomic potential, adapted to new energies and forces, and its mirror symmetry restored.

Datasets: MD17 ethanol (20 DFT frames: 12 train, 8 test) and MMFF94 labels of rdkit conformers of NCI molecules
(train on some molecules, test on others). Before any method the per-element energy shift is refitted by least
squares on the training data (the new energy reference), so "zero_shot" is the pretrained network after that refit.

Methods: zero_shot, finetune (every weight but the frozen constants), readout (freeze all but the readout MLP),
lora (irreps-safe adapters), lora_o3 (LoRA + the O(3) regularizer on the forces, auto weight), parity
(``parity_average``: energies of x and -x averaged, every weight trains). Columns: energy MAE (meV/atom), force
RMSE (eV/Å), SE(3) and O(3) force errors (relative, geoadapt's equivariance error of the node-level 1o output),
trainable parameters, seconds per training step, peak resident memory of the process so far (MB; CPU runs:
monotonic over the run, so it bounds each method from above).

Run: ``OMP_NUM_THREADS=1 python benchmarks/foundation_adaptation.py [--seeds 3 --epochs 4]``; writes
results/foundation_adaptation.{json,md}. ``--quick``: MD17 only, one seed, one epoch on 4 frames.
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
from torch_geometric.loader import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import output_dir, save_json  # noqa: E402

from geoadapt.groups import O3, SE3  # noqa: E402
from geoadapt.models import build  # noqa: E402
from geoadapt.models.sevennet import refit_energy_shift  # noqa: E402
from geoadapt.regularizers import EquivarianceRegularizer  # noqa: E402
from geoadapt.report import table  # noqa: E402
from geoadapt.tasks import Potential  # noqa: E402
from geoadapt.train import Trainer  # noqa: E402

METHODS = ("zero_shot", "finetune", "readout", "lora", "lora_o3", "parity")
COLUMNS = ("energy_mae", "force_rmse", "se3_error", "o3_error", "trainable", "s_per_step", "peak_mb")
READOUT = ("reduce_input_to_hidden", "reduce_hidden_to_energy")


def datasets(quick: bool) -> dict[str, tuple[list, list]]:
    """name -> (train graphs, test graphs)."""
    from geoadapt.data.potentials import load_md17, load_mmff_conformers

    frames = load_md17("ethanol").graphs
    out = {"md17_ethanol": (frames[:4], frames[12:16]) if quick else (frames[:12], frames[12:])}
    if not quick:
        mmff = load_mmff_conformers("nci", conformers_per_molecule=2, limit=16, max_atoms=20).graphs
        ids = sorted({int(g.mol_id) for g in mmff})
        train_ids = set(ids[: len(ids) * 3 // 4])
        out["mmff_nci"] = (
            [g for g in mmff if int(g.mol_id) in train_ids],
            [g for g in mmff if int(g.mol_id) not in train_ids],
        )
    return out


def readout_patterns(model) -> tuple[str, ...]:
    """Freeze patterns for every parameterized block of SevenNet's network except its readout MLP."""
    return tuple(
        f"net.{name}.*"
        for name, child in model.net.named_children()
        if name not in READOUT and any(p.requires_grad for p in child.parameters())
    )


def run_method(method: str, base, train: list, test: list, args, seed: int) -> dict[str, float]:
    model = copy.deepcopy(base)
    strategy, options, regularizers = None, {}, []
    if method in ("finetune", "lora", "lora_o3", "parity"):
        strategy = {"lora_o3": "lora", "parity": "parity_average"}.get(method, method)
    if method == "readout":
        strategy, options = "freeze", {"patterns": readout_patterns(model)}
    # refit_shift=False: refitted once on the base model, so every method starts from the same zero-shot
    task = Potential(force_weight=args.force_weight, refit_shift=False)
    if method == "lora_o3":
        regularizers = [EquivarianceRegularizer(O3(), task.view_spec(model.spec))]
    trainer = Trainer(
        model,
        task,
        regularizers,
        strategy=strategy or "finetune",
        strategy_options=options,
        groups=[SE3(), O3()],
        max_epochs=0 if method == "zero_shot" else args.epochs,
        lr=args.lr,
        seed=seed,
        progress=False,
        eq_samples=2,
    )
    loader = DataLoader(train, batch_size=args.batch_size, shuffle=True)
    start = time.perf_counter()
    trainer.fit(loader)
    seconds = time.perf_counter() - start
    metrics = trainer.evaluate(DataLoader(test, batch_size=16))
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return {
        "energy_mae": metrics["energy_mae"],
        "force_rmse": metrics["force_rmse"],
        "se3_error": metrics["equivariance_error/SE3(scale=1.0)"],
        "o3_error": metrics["equivariance_error/O3"],
        "trainable": 0 if method == "zero_shot" else trainable,
        "s_per_step": seconds / max(trainer.global_step, 1) if trainer.global_step else 0.0,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def summarize(runs: list[dict]) -> dict[str, list[float]]:
    """column -> [mean, std] over seeds."""
    return {
        c: [statistics.mean(r[c] for r in runs), statistics.stdev(r[c] for r in runs) if len(runs) > 1 else 0.0]
        for c in COLUMNS
    }


def checks(summary: dict[str, dict[str, list[float]]]) -> dict[str, dict]:
    """The targets: LoRA vs fine-tuning, the O(3) regularizer's reflection error cut, parity averaging exact."""
    fine, lora, reg, parity = (summary[m] for m in ("finetune", "lora", "lora_o3", "parity"))
    cut = lora["o3_error"][0] / max(reg["o3_error"][0], 1e-30)
    return {
        "lora_within_10pct_of_finetune_with_under_3pct_params": {
            "force_rmse_ratio": lora["force_rmse"][0] / fine["force_rmse"][0],
            "param_share": lora["trainable"][0] / fine["trainable"][0],
            "met": lora["force_rmse"][0] <= 1.1 * fine["force_rmse"][0]
            and lora["trainable"][0] < 0.03 * fine["trainable"][0],
        },
        "o3_regularizer_cuts_reflection_error_10x_at_finetune_rmse": {
            "cut": cut,
            "force_rmse": reg["force_rmse"][0],
            "finetune_rmse_plus_std": fine["force_rmse"][0] + fine["force_rmse"][1],
            "met": cut >= 10 and reg["force_rmse"][0] <= fine["force_rmse"][0] + fine["force_rmse"][1],
        },
        # A random O(3) element is a rotation times the inversion: the rotation's float32 noise stays, the
        # reflection must add nothing beyond it (the pure inversion is exact, tests/adapt/test_parity_average.py).
        "parity_average_exact": {
            "o3_minus_se3_error": parity["o3_error"][0] - parity["se3_error"][0],
            "met": parity["o3_error"][0] - parity["se3_error"][0] <= 1e-6,
        },
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--force-weight", type=float, default=1.0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.epochs = 1, 1
    out_dir = output_dir(args)
    pretrained = build("sevennet_0")
    results, lines = {}, ["# SevenNet-0 adapted to new energies and forces", ""]
    for name, (train, test) in datasets(args.quick).items():
        base = copy.deepcopy(pretrained)
        fit = refit_energy_shift(base, train)
        runs = {m: [run_method(m, base, train, test, args, seed) for seed in range(args.seeds)] for m in METHODS}
        summary = {m: summarize(r) for m, r in runs.items()}
        found = checks(summary)
        results[name] = {
            "train": len(train),
            "test": len(test),
            "shift_refit_mae_mev_per_atom": [fit.mae_before * 1000, fit.mae_after * 1000],
            "runs": runs,
            "summary": summary,
            "checks": found,
        }
        header = ["method", "energy MAE meV/atom", "force RMSE eV/Å", "SE(3) force err", "O(3) force err"]
        header += ["trainable", "s/step", "peak MB"]
        rows = [
            [m]
            + [f"{s[c][0]:.3g} ± {s[c][1]:.2g}" for c in COLUMNS[:2]]
            + [f"{s[c][0]:.2e}" for c in COLUMNS[2:4]]
            + [f"{int(s['trainable'][0])}", f"{s['s_per_step'][0]:.3f}", f"{s['peak_mb'][0]:.0f}"]
            for m, s in summary.items()
        ]
        lines += [f"#### {name} ({len(train)} train / {len(test)} test graphs, {args.seeds} seeds)", ""]
        lines += [table(header, rows), ""]
        lines += [f"- {k}: {'met' if v['met'] else 'NOT met'} ({v})" for k, v in found.items()] + [""]
        print("\n".join(lines[-(len(found) + 4) :]))
    payload = {
        "settings": {k: v for k, v in vars(args).items() if k != "out"} | {"threads": torch.get_num_threads()},
        "rows": [
            {"dataset": d, "method": m, **{c: v[0] for c, v in s.items()}}
            for d, r in results.items()
            for m, s in r["summary"].items()
        ],
        "datasets": results,
    }
    path = save_json("foundation_adaptation", payload, out_dir)
    tmp = out_dir / ".foundation_adaptation.md.tmp"
    tmp.write_text("\n".join(lines))
    tmp.replace(out_dir / "foundation_adaptation.md")
    print(f"\nsaved {path}")
    return payload


if __name__ == "__main__":
    main()
