"""The potential demo (``make demo``): a foundation potential taken to a new level of theory, keeping its symmetry and
what it knew, then run as an ASE calculator.

1. SevenNet-0 (PBE, trained on MPtrj) loads offline from the ``sevenn`` wheel; its symmetry is measured in float64
   on crystals: rotations and translations exact, mirror images not (its checkpoint is built without parity).
2. A small periodic EMT set (rattled, strained fcc Cu, Ni, Ag, Au cells, alloys, vacancies and slabs;
   :mod:`geoadapt.data.emt`) is the target; crystals of other elements and structure types labelled by the frozen
   model (:mod:`geoadapt.data.source_like`, :func:`~geoadapt.train.replay.pseudolabel`) are the replay pool and,
   drawn again, the held-out set forgetting is measured on.
3. The per-element energy shift is refitted (E0s), then LoRA adapters train with replay mixed into every step.
4. The table: energy, force and stress errors on held-out EMT structures, forgetting, SE(3) and O(3) force errors.
5. The adapted model becomes an ASE calculator and runs 50 steps of NVE molecular dynamics on a Cu supercell.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader

ELEMENTS = ("Cu", "Ni", "Ag", "Au")
LORA_LR = 1e-2  # the top of the LoRA grid of benchmarks/potential_adaptation.py
# The shift is refitted once before the zero-shot row, so both rows share it; energies and forces in the loss.
TASK_OPTIONS = {"refit_shift": False, "stress_weight": 0.0}


def symmetry(frames: list, samples: int = 4) -> dict[str, float]:
    """Mean relative SE(3) and O(3) errors of SevenNet-0's forces on ``frames``, in float64."""
    from geoadapt.groups import O3, SE3
    from geoadapt.io import from_atoms
    from geoadapt.metrics import equivariance_error
    from geoadapt.models import build
    from geoadapt.models.potential import Forces

    model = build("sevennet_0", dtype=torch.float64)
    batch = Batch.from_data_list(from_atoms(frames, dtype=torch.float64).graphs)
    forces = Forces(model)
    out = {}
    for group in (SE3(), O3()):
        generator = torch.Generator().manual_seed(0)
        error = equivariance_error(forces, batch, group, forces.spec, n_samples=samples, generator=generator)
        out[group.name] = float(error.mean())
    return out


def measured(model: torch.nn.Module, data: dict[str, list], trainer: Any) -> dict[str, float]:
    """Test errors, forgetting and the SE(3) / O(3) errors of the forces (float32) of ``model``."""
    from geoadapt.tasks.forgetting import forgetting, potential_errors

    test, lost = potential_errors(model, data["test"]), forgetting(model, data["forgetting"])
    symmetry_errors = trainer.evaluate(DataLoader(data["test"], batch_size=16))
    return {
        **{k: test[k] for k in ("energy_mae", "force_mae", "stress_mae")},
        **{f"forgetting_{k}": lost[k] for k in ("energy_mae", "force_mae", "stress_mae")},
        "se3_error": symmetry_errors["equivariance_error/SE3(scale=1.0)"],
        "o3_error": symmetry_errors["equivariance_error/O3"],
    }


def datasets(train: int, test: int, replay: int, held_out: int, model: torch.nn.Module) -> tuple[dict, dict]:
    """EMT train/test graphs and the pseudolabelled replay and forgetting crystals; the energy shift refitted on the
    training graphs first (its numbers returned)."""
    from geoadapt.data.emt import emt_structures
    from geoadapt.data.source_like import source_like_structures
    from geoadapt.io import from_atoms
    from geoadapt.models.energy_shift import refit_energy_shift
    from geoadapt.train.replay import pseudolabel

    graphs = from_atoms(emt_structures(train + test, seed=0, elements=ELEMENTS), source="emt").graphs
    data = {"train": graphs[:train], "test": graphs[train:]}
    fit = refit_energy_shift(model, data["train"])
    elements = sorted({int(z) for g in graphs for z in g.z})
    data["replay"] = pseudolabel(model, source_like_structures(replay, elements, seed=1))
    data["forgetting"] = pseudolabel(model, source_like_structures(held_out, elements, seed=2))
    return data, {"mae_before": fit.mae_before * 1000, "mae_after": fit.mae_after * 1000}


def adapt(model: torch.nn.Module, data: dict, epochs: int, ratio: float, seed: int = 0):
    """LoRA on a copy of ``model`` with replay at ``ratio``; the fitted Trainer."""
    from geoadapt.groups import O3, SE3
    from geoadapt.train import Trainer
    from geoadapt.train.replay import ReplayLoader

    trainer = Trainer(
        copy.deepcopy(model), "potential", strategy="lora", groups=[SE3(), O3()], max_epochs=epochs, lr=LORA_LR,
        seed=seed, progress=False, eq_samples=2, task_options=TASK_OPTIONS,
    )  # fmt: skip
    trainer.fit(ReplayLoader(DataLoader(data["train"], batch_size=4, shuffle=True), data["replay"], ratio))
    return trainer


def molecular_dynamics(model: torch.nn.Module, steps: int = 50, seed: int = 0) -> dict[str, float]:
    """NVE (velocity Verlet, 1 fs) of a 32-atom Cu cell at 300 K with ``model`` as the ASE calculator: the largest
    drift of the total energy from its start (eV/atom), the final temperature (K) and the seconds per step."""
    from ase import units
    from ase.build import bulk
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution
    from ase.md.verlet import VelocityVerlet

    from geoadapt.io import Calculator

    atoms = bulk("Cu", "fcc", a=3.61, cubic=True).repeat((2, 2, 2))
    atoms.rattle(0.02, seed=seed)
    atoms.calc = Calculator(model, device="cpu")
    MaxwellBoltzmannDistribution(atoms, temperature_K=300, rng=np.random.default_rng(seed))
    dynamics = VelocityVerlet(atoms, timestep=1.0 * units.fs)
    start_energy, energies = atoms.get_total_energy(), []
    dynamics.attach(lambda: energies.append(atoms.get_total_energy()), interval=1)
    start = time.perf_counter()
    dynamics.run(steps)
    seconds = time.perf_counter() - start
    drift = max(abs(e - start_energy) for e in energies) / len(atoms)
    return {"steps": steps, "atoms": len(atoms), "drift_ev_per_atom": drift,
            "temperature_k": float(atoms.get_temperature()), "seconds_per_step": seconds / steps}  # fmt: skip


def _row(name: str, values: dict[str, float], share: float) -> list[str]:
    return [name, f"{values['energy_mae']:.1f}", f"{values['force_mae']:.1f}", f"{values['stress_mae']:.2f}",
            f"{values['forgetting_force_mae']:.2f}", f"{values['forgetting_energy_mae']:.2f}",
            f"{values['se3_error']:.1e}", f"{values['o3_error']:.1e}", f"{100 * share:.1f}%"]  # fmt: skip


def table_text(rows: list[dict]) -> str:
    """The accuracy, forgetting and symmetry table of the demo."""
    from geoadapt.report import table

    header = ["model", "energy MAE meV/atom", "force MAE meV/Å", "stress MAE meV/Å³", "forgetting force meV/Å"]
    header += ["forgetting energy meV/atom", "SE(3) force err", "O(3) force err", "trainable"]
    return table(header, [_row(r["model"], r["metrics"], r["trainable_share"]) for r in rows])


def story(out_dir: Path, quick: bool = False, ratio: float = 0.25) -> dict[str, Any]:
    """Run the five steps of the module docstring, printing as it goes; writes ``summary.json`` to ``out_dir``."""
    from geoadapt.data.emt import emt_structures
    from geoadapt.models import build
    from geoadapt.train import Trainer

    train, test, replay, held_out, epochs = (8, 4, 4, 4, 1) if quick else (32, 16, 32, 24, 8)
    seconds, start = {}, time.perf_counter()
    model = build("sevennet_0")
    seconds["load"] = time.perf_counter() - start
    print(f"1. SevenNet-0 loaded offline from the sevenn wheel ({sum(p.numel() for p in model.parameters())} weights)")
    start = time.perf_counter()
    sym = symmetry(emt_structures(2 if quick else 4, seed=3, elements=ELEMENTS))
    seconds["symmetry"] = time.perf_counter() - start
    print(f"   float64 force errors on crystals: SE(3) {sym['SE3']:.1e} (exact), O(3) {sym['O3']:.1e} (mirrors broken)")
    start = time.perf_counter()
    data, refit = datasets(train, test, replay, held_out, model)
    seconds["data"] = time.perf_counter() - start
    print(f"2. EMT target: {train} training and {test} test structures of {', '.join(ELEMENTS)}; {replay} replay and "
          f"{held_out} held-out source-like crystals labelled by SevenNet-0")  # fmt: skip
    print(f"   energy shift refitted: {refit['mae_before']:.0f} -> {refit['mae_after']:.0f} meV/atom")
    zero = Trainer(copy.deepcopy(model), "potential", groups=["se3", "o3"], max_epochs=0, progress=False,
                   eq_samples=2, task_options=TASK_OPTIONS)  # fmt: skip
    rows = [{"model": "SevenNet-0 (zero-shot, E0s refitted)", "metrics": measured(model, data, zero),
             "trainable_share": 0.0}]  # fmt: skip
    start = time.perf_counter()
    trainer = adapt(model, data, epochs, ratio)
    seconds["adapt"] = time.perf_counter() - start
    total = sum(p.numel() for p in model.parameters() if p.requires_grad)
    share = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad) / total
    print(f"3. LoRA + replay ({ratio:.0%} of every step): {trainer.global_step} steps in {seconds['adapt']:.0f} s")
    rows.append({"model": "LoRA + replay", "metrics": measured(trainer.model, data, trainer), "trainable_share": share})
    print("4. On held-out EMT structures; forgetting on held-out crystals of other elements (vs SevenNet-0's labels):")
    print(table_text(rows))
    start = time.perf_counter()
    md = molecular_dynamics(trainer.model, steps=10 if quick else 50)
    seconds["md"] = time.perf_counter() - start
    print(f"5. ASE calculator of the adapted model: {md['steps']} NVE steps of {md['atoms']} Cu atoms at 300 K, "
          f"energy drift {md['drift_ev_per_atom']:.1e} eV/atom")  # fmt: skip
    summary = {"elements": list(ELEMENTS), "sizes": {k: len(v) for k, v in data.items()}, "epochs": epochs,
               "steps": trainer.global_step, "replay_ratio": ratio, "lr": LORA_LR, "symmetry_float64": sym,
               "energy_shift_refit_mev_per_atom": refit, "rows": rows, "md": md, "seconds": seconds}  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / ".summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=1))
    tmp.replace(out_dir / "summary.json")
    return summary
