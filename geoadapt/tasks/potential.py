"""The potential task: an energy model trained on energies, forces and (for crystals) stresses.

The model is an energy model (``spec.output`` ``0e``, graph level). Training and the equivariance metrics see it
through :class:`~geoadapt.tasks.potential_terms.PotentialView`, its node-level force output (``1o``), so
regularizers (built on ``task.output_spec``, the force Spec) and ``measure_equivariance`` treat forces like any
other output. Before training, the per-element energy shift of a model implementing
:class:`~geoadapt.models.potential.EnergyShift` (SevenNet among them) is set to the data's energy reference.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from torch import Tensor, nn
from torch_geometric.data import Data

from geoadapt.models.energy_shift import ShiftRefit, refit_energy_shift, set_isolated_atom_energies
from geoadapt.models.potential import EnergyShift
from geoadapt.spec import Spec
from geoadapt.structure import AnyData
from geoadapt.tasks.base import Pair, Task
from geoadapt.tasks.potential_terms import (
    MEV,
    PotentialLoss,
    PotentialView,
    force_spec,
    forgetting_metrics,
    graphs_of,
    potential_metrics,
)
from geoadapt.tasks.registry import register_task

log = logging.getLogger("geoadapt")


@register_task
class Potential(Task):
    """Energies ``(B, 1)`` in eV, forces ``(N, 3)`` in eV/Å and stresses ``(B, 3, 3)`` in eV/Å³ of an energy model.

    Metrics: ``energy_mae`` (meV/atom), ``energy_mae_total`` (eV), ``force_rmse`` / ``force_mae`` (eV/Å) and, when
    the batches carry ``stress``, ``stress_mae`` / ``stress_rmse`` (meV/Å³); equivariance is that of the forces.

    Args:
        energy_weight, force_weight, stress_weight: loss weights of the energy per atom (eV/atom), the force
            components (eV/Å) and the stress components (eV/Å³; used for batches that carry ``stress``).
        refit_shift: set the model's per-element energy shift (:class:`~geoadapt.models.potential.EnergyShift`) to
            the training data's energy reference before training: from isolated-atom energies when the data gives
            them (``e0s``), else by least squares on the training energies. ``None``: when the model has one.
        e0s: isolated-atom energies (atomic number -> eV); default: the ``e0s`` of the training loader's dataset
            (a :class:`~geoadapt.data.potentials.PotentialDataset`, e.g. from :func:`geoadapt.io.read`) when any.
        forgetting: graphs labelled by the source model before adaptation (:func:`geoadapt.train.replay.pseudolabel`
            of structures like its pretraining data); the metrics then hold ``forgetting_energy_mae``,
            ``forgetting_force_mae`` and the rest (:func:`~geoadapt.tasks.potential_terms.forgetting_metrics`):
            how far the model moved on what it knew, next to the target errors every epoch.
    """

    name = "potential"
    default_distance = "mse"
    headline_metric = "force_rmse"
    data_kind = "structures"
    prediction_column = "energy"
    gives_forces = True

    def __init__(
        self,
        energy_weight: float = 1.0,
        force_weight: float = 1.0,
        stress_weight: float = 1.0,
        refit_shift: bool | None = None,
        e0s: Mapping[int, float] | None = None,
        forgetting: Sequence[Data] | None = None,
    ) -> None:
        super().__init__()
        self.weights = PotentialLoss(float(energy_weight), float(force_weight), float(stress_weight))
        self.refit_shift = refit_shift
        self.e0s = {int(z): float(e) for z, e in (e0s or {}).items()}
        self.forgetting = list(forgetting or [])
        self.shift_refit: ShiftRefit | None = None  # the least-squares refit, when one ran
        self.shift_change: dict[int, float] | None = None  # eV added to each element's shift, when set

    def bind(self, model: nn.Module, spec: Spec) -> None:
        """Check that ``model`` is an energy model (graph-level ``0e``); potentials train on raw eV (no scaler)."""
        force_spec(spec)
        super().bind(model, spec)

    def view_spec(self, spec: Spec) -> Spec:
        """The force Spec (node-level ``1o``, :func:`~geoadapt.tasks.potential_terms.force_spec`)."""
        return force_spec(spec)

    def split(self, batch: object) -> Pair:
        """The graphs carry their labels (``energy``, ``force``, ``stress``): ``(batch, None)``."""
        return batch, None

    def view(self, model: nn.Module, training: bool = False) -> nn.Module:
        """The forces of ``model`` (recording energies and, in training with a stress weight, stresses)."""
        return PotentialView(model, self._bound_spec(), stress=training and self.weights.stress_weight > 0)

    def loss(self, view: nn.Module, out: Tensor, targets: Any, inputs: AnyData) -> Tensor:
        """The joint loss (:class:`~geoadapt.tasks.potential_terms.PotentialLoss`) of the view's first call and
        ``out`` (the forces); the view forgets them after, for the next step."""
        energy, stress = view.energy, view.stresses
        view.reset()
        return self.weights(energy, out, inputs, stress)

    def metrics(self, predictor: nn.Module, batches: Sequence[Pair]) -> dict[str, float]:
        """Energy, force (and stress) errors of the energy model ``predictor``; with ``forgetting``, the same errors
        against the source model's labels, prefixed ``forgetting_``."""
        metrics = potential_metrics(predictor, [inputs for inputs, _ in batches])
        if self.forgetting:
            metrics.update(forgetting_metrics(predictor, self.forgetting))
        return metrics

    def prediction_metrics(self, outputs: Tensor, targets: Tensor) -> dict[str, float]:
        """Errors of energies ``(n, 1)`` against reference energies ``(n, 1)``, in eV: ``energy_mae_total`` and
        ``energy_rmse_total`` (forces and per-atom errors need the structures: :meth:`metrics`)."""
        error = (outputs.double() - targets.double().reshape(outputs.shape)).reshape(-1)
        return {"energy_mae_total": float(error.abs().mean()), "energy_rmse_total": float(error.pow(2).mean().sqrt())}

    def scale_description(self) -> str:
        return "the forces' spread"

    def headline(self, metrics: Mapping[str, float], prefix: str = "val_") -> str:
        """``val energy MAE 2.8 meV/atom, force RMSE 0.05 eV/Å`` (and the stress MAE when measured)."""
        if f"{prefix}energy_mae" not in metrics:
            return "no validation data"
        where = prefix.replace("_", " ")
        line = f"{where}energy MAE {metrics[f'{prefix}energy_mae']:.4g} meV/atom, "
        line += f"force RMSE {metrics[f'{prefix}force_rmse']:.4g} eV/Å"
        if f"{prefix}stress_mae" in metrics:
            line += f", stress MAE {metrics[f'{prefix}stress_mae']:.4g} meV/Å³"
        return line

    def setup(self, model: nn.Module, loader: Iterable) -> None:
        """Set the per-element energy shift to the data's reference (see ``refit_shift``)."""
        from geoadapt.models.predictor import base_model

        base = base_model(model)
        refit = self.refit_shift if self.refit_shift is not None else isinstance(base, EnergyShift)
        if not refit or self.shift_refit is not None or self.shift_change is not None:
            return
        if not isinstance(base, EnergyShift):
            raise ValueError(
                "refit_shift: expected a model with a per-element energy shift (elements, energy_shift(), "
                f"add_energy_shift(change); geoadapt.models.potential.EnergyShift), got {type(base).__name__}"
            )
        e0s = self.e0s or dict(getattr(getattr(loader, "dataset", None), "e0s", None) or {})
        if e0s:
            self.shift_change = set_isolated_atom_energies(base, e0s)
            log.info("energy shift set from the isolated-atom energies of elements %s", sorted(e0s))
            return
        self.shift_refit = refit_energy_shift(base, graphs_of(loader))
        self.shift_change = dict(self.shift_refit.change)
        log.info(
            "energy shift refitted on %d elements: MAE %.4g -> %.4g meV/atom",
            len(self.shift_refit.change),
            self.shift_refit.mae_before * MEV,
            self.shift_refit.mae_after * MEV,
        )

    def __repr__(self) -> str:
        w = self.weights
        return (
            f"Potential(energy_weight={w.energy_weight}, force_weight={w.force_weight}, "
            f"stress_weight={w.stress_weight}, refit_shift={self.refit_shift})"
        )
