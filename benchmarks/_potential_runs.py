"""One adaptation run of SevenNet-0 on EMT crystals, its measurement and its timing (potential_adaptation.py).

Every trained method goes through geoadapt's Trainer with a strategy (``finetune``, ``freeze``, ``lora``,
``parity_average``) and the potential task (:class:`~geoadapt.tasks.Potential`: energies per atom, forces and
stresses in the loss); replay is a :class:`~geoadapt.train.replay.ReplayLoader` around the training loader.
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch_geometric.loader import DataLoader

from geoadapt.groups import O3, SE3
from geoadapt.tasks import Potential
from geoadapt.tasks.forgetting import forgetting, potential_errors
from geoadapt.train import Trainer
from geoadapt.train.replay import ReplayLoader

TRAINED = ("finetune", "freeze", "lora", "lora_replay", "finetune_replay", "parity")
STRATEGY = {"lora_replay": "lora", "finetune_replay": "finetune", "parity": "parity_average"}
READOUT = ("reduce_input_to_hidden", "reduce_hidden_to_energy")
LAST_BLOCK = "4_"  # SevenNet-0's fifth (last) interaction block


def freeze_patterns(model: nn.Module) -> tuple[str, ...]:
    """Freeze every parameterized block of SevenNet-0's network but the last interaction block and the readout."""
    return tuple(
        f"net.{name}.*"
        for name, child in model.net.named_children()
        if not name.startswith(LAST_BLOCK) and name not in READOUT and any(p.requires_grad for p in child.parameters())
    )


@dataclass
class Setting:
    """What every run shares: loss weights, epochs, batch size, replay ratio, equivariance samples."""

    epochs: int
    batch_size: int
    energy_weight: float
    force_weight: float
    stress_weight: float
    replay_ratio: float
    eq_samples: int = 2


def trainer_for(method: str, base: nn.Module, lr: float, setting: Setting, seed: int, epochs: int) -> Trainer:
    """A Trainer of ``method`` on a copy of ``base``, with energies, forces and stresses in the loss."""
    model = copy.deepcopy(base)
    strategy = STRATEGY.get(method, method)
    options = {"patterns": freeze_patterns(model)} if method == "freeze" else {}
    task = Potential(
        energy_weight=setting.energy_weight,
        force_weight=setting.force_weight,
        stress_weight=setting.stress_weight,
        refit_shift=False,  # refitted once on the base model: every method starts from the same zero-shot
    )
    return Trainer(
        model,
        task,
        strategy=strategy,
        strategy_options=options,
        groups=[SE3(), O3()],
        max_epochs=epochs,
        lr=lr,
        seed=seed,
        progress=False,
        eq_samples=setting.eq_samples,
    )


def train_loader(method: str, train: list, replay: list, setting: Setting, shuffle: bool = True) -> Any:
    """The training loader of ``method``: the target graphs, with replay mixed in for the ``*_replay`` methods."""
    loader = DataLoader(train, batch_size=setting.batch_size, shuffle=shuffle)
    return ReplayLoader(loader, replay, setting.replay_ratio) if method.endswith("_replay") else loader


def fit(method: str, base: nn.Module, lr: float, data: dict, setting: Setting, seed: int) -> Trainer:
    """Train ``method`` at ``lr``; the fitted trainer."""
    trainer = trainer_for(method, base, lr, setting, seed, setting.epochs)
    torch.manual_seed(seed)
    trainer.fit(train_loader(method, data["train"], data["replay"], setting))
    return trainer


# What every job reads: set by the parent before its worker processes fork (so they share it without pickling).
SHARED: dict[str, Any] = {}


def job(method: str, lr: float) -> dict[str, Any]:
    """Train ``method`` at ``lr`` on ``SHARED``'s data; its validation errors, test measurements, steps and share."""
    base, data, setting, seed = SHARED["base"], SHARED["data"], SHARED["setting"], SHARED["seed"]
    trainer = fit(method, base, lr, data, setting, seed)
    return {
        "method": method,
        "lr": lr,
        "val": potential_errors(trainer.model, data["val"]),
        "test": measure(trainer.model, trainer, data),
        "steps": trainer.global_step,
        "trainable_share": trainable_share(trainer, base),
    }


def trainable_share(trainer: Trainer | None, base: nn.Module) -> float:
    """Trainable parameters over the base model's trainable parameters (0 for the zero-shot model)."""
    if trainer is None:
        return 0.0
    total = sum(p.numel() for p in base.parameters() if p.requires_grad)
    return sum(p.numel() for p in trainer.model.parameters() if p.requires_grad) / total


def measure(model: nn.Module, trainer: Trainer, data: dict) -> dict[str, float]:
    """Test errors (energy, forces, stress), forgetting on the held-out source-like crystals, SE(3) and O(3) errors
    of the forces on the test crystals."""
    test = potential_errors(model, data["test"])
    lost = forgetting(model, data["forgetting"])
    symmetry = trainer.evaluate(DataLoader(data["test"], batch_size=16))
    return {
        "energy_mae": test["energy_mae"],
        "force_mae": test["force_mae"],
        "stress_mae": test["stress_mae"],
        "forgetting_energy_mae": lost["energy_mae"],
        "forgetting_force_mae": lost["force_mae"],
        "forgetting_stress_mae": lost["stress_mae"],
        "se3_error": symmetry["equivariance_error/SE3(scale=1.0)"],
        "o3_error": symmetry["equivariance_error/O3"],
    }


def seconds_per_step(
    methods: tuple[str, ...], base: nn.Module, data: dict, setting: Setting, steps: int, repeats: int, warmup: int = 1
) -> dict[str, dict[str, float]]:
    """Seconds per training step of each method over ``repeats`` interleaved rounds (after ``warmup`` rounds,
    discarded), each round ``steps`` steps of a fresh Trainer on the same first batches: the median, min and max of
    the wall time, and the median of the process's CPU time (the same on an idle machine; on a shared one the wall
    time also holds the waits for a core)."""
    batches = data["train"][: steps * setting.batch_size]
    wall: dict[str, list[float]] = {m: [] for m in methods}
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    for round_ in range(warmup + repeats):
        for method in methods:
            trainer = trainer_for(method, base, 1e-3, setting, seed=0, epochs=1)
            loader = train_loader(method, batches, data["replay"], setting, shuffle=False)
            start, start_cpu = time.perf_counter(), time.process_time()
            trainer.fit(loader)
            if round_ >= warmup:
                wall[method].append((time.perf_counter() - start) / trainer.global_step)
                cpu[method].append((time.process_time() - start_cpu) / trainer.global_step)
    return {
        m: {"median": statistics.median(w), "min": min(w), "max": max(w), "cpu_median": statistics.median(cpu[m]),
            "repeats": len(w)}
        for m, w in wall.items()
    }  # fmt: skip
