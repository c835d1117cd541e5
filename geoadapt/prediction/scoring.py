"""One batch through the predictor: its predictions in target units and, on request, each prediction's own
equivariance error and its symmetrized value.

The error is the engine's (:mod:`geoadapt.equivariance`): the batch's K transformed copies run stacked in as
few forwards as the model's node budget allows, the batch itself is not run again, and each sample's relative
error ``r`` is averaged over its copies. Its scale is the targets' spread for a regression model with a target
scaler (the error ``Trainer.evaluate`` and ``geoadapt evaluate`` average); without one, every block scale is 1
and the error is in output units (logits, eV).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from geoadapt.equivariance import copies_needed, make_copies, output_rows, run_copies
from geoadapt.groups import Group
from geoadapt.metrics.task import predicted_class
from geoadapt.models.potential import potential
from geoadapt.prediction.symmetrized import copies_average
from geoadapt.prediction.target_units import TargetPredictor
from geoadapt.structure import AnyData, is_graph


@dataclass
class ScoreOptions:
    """What to compute besides the predictions.

    Attributes:
        group: the group the errors and symmetrized values are under (``None``: neither is computed).
        samples: transformed copies per input (rounded up so every coset is measured, e.g. both parities of O(3)).
        with_equivariance: each prediction's equivariance error (and, for classifiers, the share of copies that
            keep its class).
        symmetrize: each prediction's symmetrized value.
        forces: potentials: the forces ``-dE/dpos`` too.
    """

    group: Group | None = None
    samples: int = 8
    with_equivariance: bool = False
    symmetrize: bool = False
    forces: bool = False


@dataclass
class Scored:
    """A batch's predictions: ``outputs`` ``(B, dim)`` (target units, logits or energies), and as asked ``forces``
    (one ``(atoms, 3)`` tensor per input, eV/Å), ``error`` ``(B,)``, ``consistency`` ``(B,)`` (classifiers) and
    ``symmetrized`` ``(B, dim)``."""

    outputs: Tensor
    forces: list[Tensor] | None = None
    error: Tensor | None = None
    consistency: Tensor | None = None
    symmetrized: Tensor | None = None


def _forward(target: TargetPredictor, batch: AnyData, forces: bool) -> tuple[Tensor, list[Tensor] | None]:
    if forces:  # an energy model (prepare checked): forces by autograd of its energies
        out = potential(target.network, batch)  # autograd inside, even under no_grad
        counts = torch.diff(batch.ptr).tolist() if is_graph(batch) else [out.forces.shape[0]]
        return output_rows(out.energy, target.spec), list(out.forces.split(counts))
    return output_rows(target.module(batch), target.spec), None


def score(
    target: TargetPredictor,
    batch: AnyData,
    options: ScoreOptions,
    generator: torch.Generator | None = None,
    symmetrizer: nn.Module | None = None,
) -> Scored:
    """Predict ``batch`` (on the model's device, graph-level outputs) with what ``options`` asks for.

    ``symmetrizer``: the exact symmetrization to run for the symmetrized values (``None``: the mean over the
    transformed copies, see :mod:`geoadapt.prediction.symmetrized`).
    """
    with torch.no_grad():
        outputs, forces = _forward(target, batch, options.forces)
        scored = Scored(outputs.detach(), forces)
        copies_wanted = options.with_equivariance or (options.symmetrize and symmetrizer is None)
        if options.group is not None and copies_wanted:
            group, spec = options.group, target.spec
            copies = make_copies(batch, group, spec, copies_needed(group, options.samples), generator)
            ran = run_copies(target.module, batch, [copies], spec, measuring=True, outputs=outputs).sets[0]
            comparison = ran.compare(group, spec)
            if options.with_equivariance:
                scale = target.scale if target.scale is not None else torch.ones(len(spec.output))
                scored.error = comparison.relative_error(scale).mean(0)
                if target.task.measures_consistency:
                    kept = predicted_class(comparison.fgx) == predicted_class(comparison.expected)
                    scored.consistency = kept.reshape(comparison.copies, -1).double().mean(0)
            if options.symmetrize and symmetrizer is None:
                scored.symmetrized = copies_average(comparison, group, spec)
        if options.symmetrize and symmetrizer is not None:
            scored.symmetrized = output_rows(symmetrizer(batch), target.spec)
    return scored
