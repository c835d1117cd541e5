"""The potential task: a joint energy + force loss, energy and force metrics, the per-element shift refit.

Batches carry ``energy`` ``(B, 1)`` in eV and ``force`` ``(N, 3)`` in eV/Å (as
:mod:`geoadapt.data.potentials` makes them). The model is an energy model (``spec.output`` ``0e``,
graph level); its forces come from :func:`geoadapt.models.potential.potential` (the model's own
``potential(data)`` or ``-dE/dpos``). Training and the equivariance metrics see the model through
:class:`PotentialView`, the node-level force output (``1o``), so regularizers and
``measure_equivariance`` treat forces like any other output.

Loss: ``energy_weight * mean((ΔE / n_atoms)^2) + force_weight * mean(ΔF^2)`` (eV/atom and eV/Å, per
component). Metrics: ``energy_mae`` in meV/atom, ``force_rmse`` and ``force_mae`` in eV/Å.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from geoadapt.models.potential import potential
from geoadapt.spec import Spec
from geoadapt.structure import GraphData, graph_index, num_graphs

log = logging.getLogger("geoadapt")
MEV = 1000.0


def force_spec(spec: Spec) -> Spec:
    """The Spec of the force output of an energy model with ``spec``: same inputs, output ``1o`` per node."""
    if spec.output != Spec(output="0e").output or spec.output_level != "graph":
        got = f"{spec.output} at {spec.output_level} level"
        raise ValueError(f"potential task: expected a model whose output is a graph-level energy '1x0e', got {got}")
    return Spec(
        fields=dict(spec.fields), output="1o", positions=spec.positions, output_level="node", levels=spec.levels
    )


class PotentialView(nn.Module):
    """Forces ``(N, 3)`` of an energy model; keeps the energies ``(B, 1)`` of its first call since :meth:`reset`.

    The Trainer's forward (with regularizer copies stacked after the batch or run after it) calls the
    model on the batch first, so the first call's leading rows are the batch's energies.
    """

    def __init__(self, model: nn.Module, spec: Spec) -> None:
        super().__init__()
        self.model, self.spec = model, force_spec(spec)
        self.symmetry = getattr(model, "symmetry", None)
        self.energy: Tensor | None = None

    def reset(self) -> None:
        """Forget the recorded energies (call before each training forward)."""
        self.energy = None

    def forward(self, data: GraphData) -> Tensor:
        out = potential(self.model, data)
        if self.energy is None:
            self.energy = out.energy
        return out.forces


def _targets(data: GraphData) -> tuple[Tensor, Tensor]:
    for key in ("energy", "force"):
        if getattr(data, key, None) is None:
            raise ValueError(f"potential task: expected batches with field {key!r} (eV, eV/Å), got none")
    energy, force = data.energy.reshape(-1, 1), data.force
    if force.shape != data.pos.shape:
        raise ValueError(f"force: expected shape {tuple(data.pos.shape)} (one row per atom), got {tuple(force.shape)}")
    return energy, force


def atoms_per_graph(data: GraphData) -> Tensor:
    """Atoms in each graph, ``(B, 1)``."""
    return torch.bincount(graph_index(data), minlength=num_graphs(data)).reshape(-1, 1)


@dataclass(frozen=True)
class PotentialLoss:
    """``energy_weight * MSE(E / n_atoms) + force_weight * MSE(F)`` (eV/atom, eV/Å)."""

    energy_weight: float = 1.0
    force_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("energy_weight", "force_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected a number >= 0, got {getattr(self, name)}")
        if self.energy_weight == 0 and self.force_weight == 0:
            raise ValueError("energy_weight, force_weight: expected at least one > 0, got both 0")

    def __call__(self, energy: Tensor, forces: Tensor, data: GraphData) -> Tensor:
        """Loss of predicted ``energy`` ``(B', 1)`` (first ``B`` rows: ``data``'s graphs) and ``forces`` ``(N, 3)``."""
        target_energy, target_force = _targets(data)
        n = atoms_per_graph(data).to(energy.dtype)
        energy = energy[: target_energy.shape[0]]
        loss = energy.new_zeros(())
        if self.energy_weight:
            loss = loss + self.energy_weight * ((energy - target_energy.to(energy.dtype)) / n).pow(2).mean()
        if self.force_weight:
            loss = loss + self.force_weight * (forces - target_force.to(forces.dtype)).pow(2).mean()
        return loss


def potential_metrics(model: nn.Module, batches: Iterable[GraphData]) -> dict[str, float]:
    """Energy MAE (meV/atom, ``energy_mae``; eV per molecule, ``energy_mae_total``), force RMSE and MAE (eV/Å)."""
    per_atom, total, force_err = [], [], []
    for data in batches:
        target_energy, target_force = _targets(data)
        out = potential(model, data)
        error = out.energy.detach().double().reshape(-1, 1) - target_energy.double()
        total.append(error)
        per_atom.append(error / atoms_per_graph(data).double())
        force_err.append(out.forces.detach().double() - target_force.double())
    if not total:
        raise ValueError("potential metrics: expected at least one batch, got none")
    force = torch.cat(force_err)
    return {
        "energy_mae": float(torch.cat(per_atom).abs().mean()) * MEV,
        "energy_mae_total": float(torch.cat(total).abs().mean()),
        "force_rmse": float(force.pow(2).mean().sqrt()),
        "force_mae": float(force.abs().mean()),
    }


def graphs_of(loader: Iterable) -> list[Data]:
    """Every graph of a loader's batches (``Batch.to_data_list``), in order."""
    graphs: list[Data] = []
    for batch in loader:
        graphs.extend(batch.to_data_list() if isinstance(batch, Batch) else [batch])
    return graphs


def has_energy_shift(model: nn.Module) -> bool:
    """True when ``model`` carries a per-element energy shift :func:`refit_shift` can refit (SevenNet)."""
    return callable(getattr(model, "_shift_row", None))


def refit_shift(model: nn.Module, loader: Iterable):
    """Refit the per-element energy shift of ``model``'s base (see ``geoadapt.models.sevennet.refit_energy_shift``)
    on every graph of ``loader``; returns the :class:`~geoadapt.models.sevennet.ShiftRefit`."""
    from geoadapt.adapt.base import base_model
    from geoadapt.models.sevennet import refit_energy_shift

    base = base_model(model)
    if not has_energy_shift(base):
        raise ValueError(
            f"refit_shift: expected a model with a per-element energy shift (SevenNet), got {type(base).__name__}"
        )
    fit = refit_energy_shift(base, graphs_of(loader))
    log.info(
        "energy shift refitted on %d elements: MAE %.4g -> %.4g meV/atom",
        len(fit.change),
        fit.mae_before * MEV,
        fit.mae_after * MEV,
    )
    return fit
