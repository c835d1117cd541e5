"""SHIM, benchmarks only: a stress term in the Trainer's potential loss, until the potential task takes stress.

Today's ``Trainer(model, "potential")`` fits energies and forces. :func:`add_stress_term` adds
``stress_weight * mean((σ_pred - σ)^2)`` (eV/Å³, per component of the 3x3 tensor) to its loss, with the stress
from the same forward and backward as the forces (:func:`geoadapt.models.potential.potential` with
``stress=True``). It swaps two attributes of one Trainer instance, nothing else:

- ``trainer.output_view``: a view that, while gradients are recorded (training steps), also keeps the stress of
  its first call, as :class:`~geoadapt.train.potential.PotentialView` keeps the energy;
- ``trainer.potential_loss``: the Trainer's own loss plus the stress term.

When the potential task object takes ``stress_weight`` itself, delete this file and pass the weight to the task.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from geoadapt.models.potential import potential
from geoadapt.train.potential import PotentialView


class StressView(PotentialView):
    """Forces ``(N, 3)`` of an energy model; keeps the energies ``(B, 1)`` and, in training, the stresses
    ``(B, 3, 3)`` of its first call since :meth:`reset`."""

    stress: Tensor | None = None

    def reset(self) -> None:
        super().reset()
        self.stress = None

    def forward(self, data: Any) -> Tensor:
        if not torch.is_grad_enabled():  # evaluation: forces only, as the plain view
            return super().forward(data)
        out = potential(self.model, data, stress=True)
        if self.energy is None:
            self.energy, self.stress = out.energy, out.stress
        return out.forces


def add_stress_term(trainer: Any, stress_weight: float) -> None:
    """Make ``trainer`` (task ``"potential"``, batches with ``stress`` ``(B, 3, 3)``) fit stresses as well."""
    if trainer.task != "potential":
        raise ValueError(f"add_stress_term: expected a Trainer of task 'potential', got {trainer.task!r}")
    if not stress_weight >= 0:
        raise ValueError(f"stress_weight: expected a number >= 0, got {stress_weight}")
    energy_and_forces = trainer.potential_loss
    views: list[StressView] = []

    def output_view(model: nn.Module) -> nn.Module:
        views.append(StressView(model, trainer.spec))
        del views[:-1]  # the training epoch's view is the one made last before its steps
        return views[-1]

    def loss(energy: Tensor, forces: Tensor, data: Any) -> Tensor:
        stress = views[-1].stress
        if stress is None or getattr(data, "stress", None) is None:
            raise ValueError("stress term: expected a predicted stress and batches with 'stress' (B, 3, 3), got none")
        target = data.stress.to(stress.dtype)
        term = (stress[: target.shape[0]] - target).pow(2).mean()
        return energy_and_forces(energy, forces, data) + stress_weight * term

    trainer.output_view = output_view
    trainer.potential_loss = loss
