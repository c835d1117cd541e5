"""SevenNet-0 (PBE) adapted to EMT on periodic fcc metals and alloys: accuracy, forgetting, symmetry and cost.

Target: ASE's EMT (another level of theory, offline) on rattled, strained Al, Cu, Ni, Pd, Ag, Pt and Au structures
(bulk cells, binary alloys, vacancies, fcc(111)/(100) slabs with vacuum; ``geoadapt.data.emt``), split into
train / validation / test. Before any method the per-element energy shift is refitted by least squares on the
training set (the E0s of the new reference), so ``zero_shot`` is the pretrained network after that refit.

Forgetting: crystals of other elements and structure types (bcc/hcp metals, rock-salt, oxides, semiconductors;
``geoadapt.data.source_like``) labelled by the frozen, refitted SevenNet-0 before adaptation; the errors of the
adapted model against those labels. Replay (``*_replay``): another set of such pseudolabelled crystals mixed into
every training step at ``--replay-ratio`` (``geoadapt.train.replay.ReplayLoader``).

Loss: energy per atom, forces and stress (MSE; weights ``--energy-weight``, ``--force-weight``, ``--stress-weight``
of the potential task). Learning rates: each of ``finetune``,
``freeze`` and ``lora`` is trained at every rate of its grid and keeps the one with the lowest validation force MAE;
``*_replay`` and ``parity`` use the rate chosen for the method they extend. Timing: median seconds per training step
over interleaved repeats (fresh trainers, the same batches).

Run: ``OMP_NUM_THREADS=1 python benchmarks/potential_adaptation.py``; writes
results/potential_adaptation.{json,md}. ``--quick``: a tiny run (for checks).
"""

from __future__ import annotations

import argparse
import copy
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import output_dir, save_json  # noqa: E402
from _potential_runs import SHARED, TRAINED, Setting, job, measure, seconds_per_step, trainer_for  # noqa: E402

from geoadapt.data.emt import emt_structures  # noqa: E402
from geoadapt.data.source_like import source_like_structures  # noqa: E402
from geoadapt.io import from_atoms  # noqa: E402
from geoadapt.models import build  # noqa: E402
from geoadapt.models.energy_shift import refit_energy_shift  # noqa: E402
from geoadapt.report import table  # noqa: E402
from geoadapt.tasks.forgetting import potential_errors  # noqa: E402
from geoadapt.train.replay import pseudolabel  # noqa: E402

METHODS = ("zero_shot", *TRAINED)
LR_GRID = {"finetune": (3e-4, 1e-3, 3e-3), "freeze": (3e-4, 1e-3, 3e-3), "lora": (1e-3, 3e-3, 1e-2)}
TUNED_FROM = {"lora_replay": "lora", "finetune_replay": "finetune", "parity": "finetune"}
COLUMNS = ("energy_mae", "force_mae", "stress_mae", "forgetting_force_mae", "forgetting_energy_mae")
COLUMNS += ("forgetting_stress_mae", "se3_error", "o3_error", "trainable_share", "s_per_step")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=120)
    parser.add_argument("--val", type=int, default=30)
    parser.add_argument("--test", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--energy-weight", type=float, default=1.0)
    parser.add_argument("--force-weight", type=float, default=1.0)
    parser.add_argument("--stress-weight", type=float, default=100.0)
    parser.add_argument("--replay-ratio", type=float, default=0.25)
    parser.add_argument("--replay", type=int, default=64, help="pseudolabelled source-like crystals to replay")
    parser.add_argument("--forgetting", type=int, default=32, help="held-out source-like crystals for forgetting")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timing-steps", type=int, default=3)
    parser.add_argument("--timing-repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=1, help="processes for the training runs (timing runs alone)")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.timing_warmup = 1
    if args.quick:
        args.train, args.val, args.test, args.epochs, args.replay, args.forgetting = 4, 2, 2, 1, 2, 2
        args.timing_steps, args.timing_repeats, args.timing_warmup = 1, 1, 0
    args.grid = {m: rates[:1] for m, rates in LR_GRID.items()} if args.quick else LR_GRID  # quick: one rate each
    return args


def datasets(args: argparse.Namespace) -> tuple[dict, object, dict]:
    """The graphs (train, val, test, replay, forgetting), the refitted base model and the refit's numbers."""
    frames = emt_structures(args.train + args.val + args.test, seed=args.seed)
    graphs = from_atoms(frames, source="emt").graphs
    data = {
        "train": graphs[: args.train],
        "val": graphs[args.train : args.train + args.val],
        "test": graphs[args.train + args.val :],
    }
    base = build("sevennet_0")
    fit = refit_energy_shift(base, data["train"])
    target_elements = sorted({int(z) for g in graphs for z in g.z})
    # Two disjoint draws: the replay pool and the held-out crystals forgetting is measured on.
    data["replay"] = pseudolabel(base, source_like_structures(args.replay, target_elements, seed=args.seed + 1))
    data["forgetting"] = pseudolabel(base, source_like_structures(args.forgetting, target_elements, seed=args.seed + 2))
    refit = {"mae_before": fit.mae_before * 1000, "mae_after": fit.mae_after * 1000, "elements": target_elements}
    return data, base, refit


def run_jobs(jobs: list[tuple[str, float]], workers: int) -> list[dict]:
    """Run the (method, learning rate) jobs, in ``workers`` forked processes (1: here), in order."""
    if workers == 1:
        return [job(m, lr) for m, lr in jobs]
    context = multiprocessing.get_context("fork")  # the workers share SHARED's data and model without pickling
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(pool.map(job, *zip(*jobs)))


def run_all(base, data: dict, setting: Setting, seed: int, workers: int, grid_of: dict) -> dict[str, dict]:
    """Every method's run: the grid runs of the tuned methods (the best by validation force MAE kept), then the
    methods that reuse a tuned rate. Each: ``lr``, ``val``, ``test``, ``steps``, ``trainable_share``, ``grid``."""
    SHARED.update(base=base, data=data, setting=setting, seed=seed)
    zero = trainer_for("finetune", base, 1e-3, setting, seed, epochs=0)
    runs = {"zero_shot": {"lr": None, "val": potential_errors(base, data["val"]), "test": measure(base, zero, data)}}
    runs["zero_shot"].update(steps=0, trainable_share=0.0, grid={})
    grid = run_jobs([(m, lr) for m, rates in grid_of.items() for lr in rates], workers)
    for method in LR_GRID:
        tried = [r for r in grid if r["method"] == method]
        runs[method] = min(tried, key=lambda r: r["val"]["force_mae"])
        runs[method]["grid"] = {str(r["lr"]): r["val"] for r in tried}
    later = run_jobs([(m, runs[TUNED_FROM[m]]["lr"]) for m in TRAINED if m not in LR_GRID], workers)
    runs.update({r["method"]: {**r, "grid": {}} for r in later})
    for method in METHODS:
        print(f"{method} (lr {runs[method]['lr']}): {runs[method]['test']}")
    return runs


def checks(rows: dict[str, dict]) -> dict[str, dict]:
    """The targets: LoRA near fine-tuning with few weights; replay cutting forgetting at a small target cost."""
    fine, lora = rows["finetune"], rows["lora"]
    out = {
        "lora_within_10pct_of_finetune_force_mae_with_at_most_3pct_weights": {
            "force_mae_ratio": lora["force_mae"] / fine["force_mae"],
            "trainable_share": lora["trainable_share"],
            "met": lora["force_mae"] <= 1.1 * fine["force_mae"] and lora["trainable_share"] <= 0.03,
        }
    }
    for base in ("lora", "finetune"):
        plain, replay = rows[base], rows[f"{base}_replay"]
        cut = plain["forgetting_force_mae"] / max(replay["forgetting_force_mae"], 1e-12)
        extra = replay["force_mae"] / plain["force_mae"] - 1
        out[f"{base}_replay_cuts_forgetting_3x_at_most_10pct_extra_target_error"] = {
            "forgetting_force_cut": cut,
            "forgetting_energy_cut": plain["forgetting_energy_mae"] / max(replay["forgetting_energy_mae"], 1e-12),
            "extra_force_mae": extra,
            "extra_energy_mae": replay["energy_mae"] / plain["energy_mae"] - 1,
            "met": cut >= 3 and extra <= 0.10,
        }
    return out


def markdown(payload: dict) -> str:
    """The table and the targets as markdown."""
    header = ["method", "lr", "energy MAE meV/atom", "force MAE meV/Å", "stress MAE meV/Å³"]
    header += ["forgetting force meV/Å", "forgetting energy meV/atom", "forgetting stress meV/Å³"]
    header += ["SE(3) force err", "O(3) force err", "trainable", "s/step", "CPU s/step"]
    rows = []
    for r in payload["rows"]:
        rows.append(
            [r["method"], f"{r['lr']:g}" if r["lr"] else "-"]
            + [f"{r[c]:.1f}" for c in ("energy_mae", "force_mae", "stress_mae")]
            + [f"{r[c]:.2f}" for c in ("forgetting_force_mae", "forgetting_energy_mae", "forgetting_stress_mae")]
            + [f"{r['se3_error']:.1e}", f"{r['o3_error']:.1e}", f"{100 * r['trainable_share']:.1f}%"]
            + [f"{r[c]:.2f}" if r[c] else "-" for c in ("s_per_step", "cpu_s_per_step")]
        )
    lines = ["# SevenNet-0 adapted to EMT on fcc metals and alloys", "", table(header, rows), ""]
    lines += [f"- {k}: {'met' if v['met'] else 'NOT met'} ({v})" for k, v in payload["checks"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    args = parse(argv)
    out_dir = output_dir(args)
    setting = Setting(args.epochs, args.batch_size, args.energy_weight, args.force_weight, args.stress_weight,
                      args.replay_ratio)  # fmt: skip
    data, base, refit = datasets(args)
    runs = run_all(base, data, setting, args.seed, args.workers, args.grid)
    timing = seconds_per_step(TRAINED, base, data, setting, args.timing_steps, args.timing_repeats, args.timing_warmup)
    rows = {}
    for method, run in runs.items():
        rows[method] = {"method": method, "lr": run["lr"], **run["test"], "trainable_share": run["trainable_share"]}
        rows[method]["s_per_step"] = timing[method]["median"] if method in timing else 0.0
        rows[method]["cpu_s_per_step"] = timing[method]["cpu_median"] if method in timing else 0.0
        rows[method]["val_force_mae"] = run["val"]["force_mae"]
    payload = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        | {"threads": torch.get_num_threads(), "tuned_from": TUNED_FROM},
        "sizes": {k: len(v) for k, v in data.items()} | {"atoms_train": sum(g.num_nodes for g in data["train"])},
        "steps": {m: r["steps"] for m, r in runs.items()},
        "energy_shift_refit_mev_per_atom": refit,
        "rows": [rows[m] for m in METHODS],
        "tuning": {m: {"chosen": r["lr"], "val": r["grid"]} for m, r in runs.items() if r["grid"]},
        "timing": timing,
        "checks": checks(rows),
    }
    path = save_json("potential_adaptation", copy.deepcopy(payload), out_dir)
    text = markdown(payload)
    tmp = out_dir / ".potential_adaptation.md.tmp"
    tmp.write_text(text)
    tmp.replace(out_dir / "potential_adaptation.md")
    print(text)
    print(f"saved {path}")
    return payload


if __name__ == "__main__":
    main()
