"""Potentials: SevenNet-0 adapted to EMT (benchmarks/potential_adaptation.py) and the potential demo
(python -m geoadapt.demo). One table builder per table the pages show."""

from __future__ import annotations

import results_data
from results_data import J, table

BENCHMARK = "potential_adaptation.json"
DEMO = "demo/summary.json"
LABELS = {
    "zero_shot": "zero-shot (E0s refitted)",
    "finetune": "fine-tune",
    "freeze": "freeze (all but the last block and readout)",
    "lora": "LoRA",
    "lora_replay": "LoRA + replay",
    "finetune_replay": "fine-tune + replay",
    "parity": "parity averaging",
}


def potential_row(method: str) -> dict:
    """One row of the benchmark (test errors, forgetting, symmetry, share, seconds per step)."""
    return next(r for r in J(BENCHMARK)["rows"] if r["method"] == method)


def potential_check(name: str) -> dict:
    """One target of the benchmark, with its numbers and whether it was met."""
    return J(BENCHMARK)["checks"][name]


def potential_table() -> str:
    """Every method: energy, force and stress errors, forgetting, SE(3) and O(3) errors, share, time."""
    rows = []
    for r in J(BENCHMARK)["rows"]:
        timed = r["s_per_step"] > 0
        rows.append(
            [LABELS[r["method"]], f"{r['lr']:g}" if r["lr"] else "-"]
            + [f"{r[c]:.1f}" for c in ("energy_mae", "force_mae", "stress_mae")]
            + [f"{r[c]:.2f}" for c in ("forgetting_energy_mae", "forgetting_force_mae", "forgetting_stress_mae")]
            + [f"{r['se3_error']:.1e}", f"{r['o3_error']:.1e}", f"{100 * r['trainable_share']:.1f}%"]
            + [f"{r['cpu_s_per_step']:.2f}" if timed else "-"]
        )
    header = ["method", "lr", "energy MAE meV/atom", "force MAE meV/Å", "stress MAE meV/Å³"]
    header += ["forgetting: energy meV/atom", "forces meV/Å", "stress meV/Å³", "SE(3) force err", "O(3) force err"]
    return table(header + ["trainable", "CPU s/step"], rows)


def tuning_table() -> str:
    """Validation force MAE (meV/Å) of every learning rate tried, the chosen one in bold."""
    tuning = J(BENCHMARK)["tuning"]
    rates = sorted({float(lr) for t in tuning.values() for lr in t["val"]})
    rows = []
    for method, t in tuning.items():
        cells = []
        for lr in rates:
            value = next((v["force_mae"] for k, v in t["val"].items() if float(k) == lr), None)
            text = "-" if value is None else f"{value:.1f}"
            cells.append(f"**{text}**" if value is not None and lr == t["chosen"] else text)
        rows.append([LABELS[method], *cells])
    return table(["method", *(f"lr {lr:g}" for lr in rates)], rows)


def timing_table() -> str:
    """Seconds per training step: CPU time and wall time (median, min-max) over interleaved repeats."""
    rows = []
    for method, t in J(BENCHMARK)["timing"].items():
        rows.append([LABELS[method], f"{t['cpu_median']:.2f}", f"{t['median']:.2f} [{t['min']:.2f}-{t['max']:.2f}]"])
    return table(["method", "CPU s/step (median)", "wall s/step (median [min-max])"], rows)


def potential_demo_table() -> str:
    """The demo's rows: errors on held-out EMT structures, forgetting, SE(3) and O(3) errors, share."""
    rows = []
    for r in J(DEMO)["rows"]:
        m = r["metrics"]
        rows.append(
            [r["model"]]
            + [f"{m[c]:.1f}" for c in ("energy_mae", "force_mae", "stress_mae")]
            + [f"{m[c]:.2f}" for c in ("forgetting_energy_mae", "forgetting_force_mae", "forgetting_stress_mae")]
            + [f"{m['se3_error']:.1e}", f"{m['o3_error']:.1e}", f"{100 * r['trainable_share']:.1f}%"]
        )
    header = ["model", "energy MAE meV/atom", "force MAE meV/Å", "stress MAE meV/Å³", "forgetting: energy meV/atom"]
    return table(header + ["forces meV/Å", "stress meV/Å³", "SE(3) force err", "O(3) force err", "trainable"], rows)


def potential_results_exist() -> bool:
    """Whether the benchmark's results are committed (the page says how to make them when not)."""
    return (results_data.RESULTS / BENCHMARK).is_file()  # the folder of results_data.use, read at call time
