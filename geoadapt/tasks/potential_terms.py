"""The parts of the potential task: the force view of an energy model, the joint loss and the metrics.

Batches carry ``energy`` ``(B, 1)`` in eV, ``force`` ``(N, 3)`` in eV/Å and, for crystals, ``stress``
``(B, 3, 3)`` in eV/Å³ (as :mod:`geoadapt.data.potentials` and :func:`geoadapt.io.read` make them). Forces and
stress come from :func:`geoadapt.models.potential.potential` (the model's own ``potential(data)`` or autograd).

Loss: ``energy_weight * mean((ΔE / n_atoms)^2) + force_weight * mean(ΔF^2) + stress_weight * mean(Δσ^2)`` (eV/atom,
eV/Å and eV/Å³, per component; the stress term when the batch carries ``stress``). Metrics: ``energy_mae`` in
meV/atom, ``energy_mae_total`` in eV, ``force_rmse`` and ``force_mae`` in eV/Å and, with stresses, ``stress_mae``
and ``stress_rmse`` in meV/Å³ (1 meV/Å³ = 0.1602 GPa); the same with the prefix ``forgetting_`` against a source
model's own labels (:func:`forgetting_metrics`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from geoadapt.models.potential import potential
from geoadapt.spec import Spec
from geoadapt.structure import GraphData, graph_index, num_graphs

MEV = 1000.0


def force_spec(spec: Spec) -> Spec:
    """The Spec of the force output of an energy model with ``spec``: same inputs, output ``1o`` per node."""
    if spec.output != Spec(output="0e").output or spec.output_level != "graph":
        got = f"{spec.output} at {spec.output_level} level"
        raise ValueError(f"potential task: expected a model whose output is a graph-level energy '1x0e', got {got}")
    return Spec(
        fields=dict(spec.fields), output="1o", positions=spec.positions, output_level="node", levels=spec.levels
    )


def carries_stress(data: GraphData) -> bool:
    """Whether a batch carries stress labels."""
    return getattr(data, "stress", None) is not None


class PotentialView(nn.Module):
    """Forces ``(N, 3)`` of an energy model; keeps the energies ``(B, 1)`` (and, with ``stress``, the stresses
    ``(B, 3, 3)`` of batches that carry stress labels) of its first call since :meth:`reset`.

    The Trainer's forward (with regularizer copies stacked after the batch or run after it) calls the
    model on the batch first, so the first call's leading rows are the batch's.
    """

    def __init__(self, model: nn.Module, spec: Spec, stress: bool = False) -> None:
        super().__init__()
        self.model, self.spec, self.stress = model, force_spec(spec), stress
        self.symmetry = getattr(model, "symmetry", None)
        self.energy: Tensor | None = None
        self.stresses: Tensor | None = None

    def reset(self) -> None:
        """Forget the recorded energies and stresses (call before each training forward)."""
        self.energy, self.stresses = None, None

    def forward(self, data: GraphData) -> Tensor:
        first = self.energy is None
        out = potential(self.model, data, stress=first and self.stress and carries_stress(data))
        if first:
            self.energy, self.stresses = out.energy, out.stress
        return out.forces


def _targets(data: GraphData) -> tuple[Tensor, Tensor]:
    for key in ("energy", "force"):
        if getattr(data, key, None) is None:
            raise ValueError(f"potential task: expected batches with field {key!r} (eV, eV/Å), got none")
    energy, force = data.energy.reshape(-1, 1), data.force
    if force.shape != data.pos.shape:
        raise ValueError(f"force: expected shape {tuple(data.pos.shape)} (one row per atom), got {tuple(force.shape)}")
    return energy, force


def _stress_target(data: GraphData) -> Tensor:
    graphs = num_graphs(data)
    stress = data.stress
    if tuple(stress.shape) != (graphs, 3, 3):
        raise ValueError(f"stress: expected shape ({graphs}, 3, 3) in eV/Å³, one per graph, got {tuple(stress.shape)}")
    return stress


def atoms_per_graph(data: GraphData) -> Tensor:
    """Atoms in each graph, ``(B, 1)``."""
    return torch.bincount(graph_index(data), minlength=num_graphs(data)).reshape(-1, 1)


@dataclass(frozen=True)
class PotentialLoss:
    """``energy_weight * MSE(E / n_atoms) + force_weight * MSE(F) + stress_weight * MSE(σ)`` (eV/atom, eV/Å, eV/Å³;
    the stress term for batches that carry ``stress``)."""

    energy_weight: float = 1.0
    force_weight: float = 1.0
    stress_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("energy_weight", "force_weight", "stress_weight"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}: expected a number >= 0, got {getattr(self, name)}")
        if self.energy_weight == 0 and self.force_weight == 0:
            raise ValueError("energy_weight, force_weight: expected at least one > 0, got both 0")

    def __call__(self, energy: Tensor, forces: Tensor, data: GraphData, stress: Tensor | None = None) -> Tensor:
        """Loss of predicted ``energy`` ``(B', 1)`` (first ``B`` rows: ``data``'s graphs), ``forces`` ``(N, 3)`` and
        ``stress`` ``(B', 3, 3)`` (needed when ``data`` carries stresses and ``stress_weight > 0``)."""
        target_energy, target_force = _targets(data)
        n = atoms_per_graph(data).to(energy.dtype)
        energy = energy[: target_energy.shape[0]]
        loss = energy.new_zeros(())
        if self.energy_weight:
            loss = loss + self.energy_weight * ((energy - target_energy.to(energy.dtype)) / n).pow(2).mean()
        if self.force_weight:
            loss = loss + self.force_weight * (forces - target_force.to(forces.dtype)).pow(2).mean()
        if self.stress_weight and carries_stress(data):
            target = _stress_target(data)
            if stress is None:
                raise ValueError("stress: expected the model's stress for a batch with stress labels, got None")
            predicted = stress[: target.shape[0]]
            loss = loss + self.stress_weight * (predicted - target.to(predicted.dtype)).pow(2).mean()
        return loss


def potential_metrics(model: nn.Module, batches: Iterable[GraphData]) -> dict[str, float]:
    """Energy MAE (meV/atom, ``energy_mae``; eV per structure, ``energy_mae_total``), force RMSE and MAE (eV/Å)
    and, when every batch carries stresses, stress MAE and RMSE (meV/Å³, per component)."""
    per_atom, total, force_err, stress_err = [], [], [], []
    for data in batches:
        target_energy, target_force = _targets(data)
        out = potential(model, data, stress=carries_stress(data))
        error = out.energy.detach().double().reshape(-1, 1) - target_energy.double()
        total.append(error)
        per_atom.append(error / atoms_per_graph(data).double())
        force_err.append(out.forces.detach().double() - target_force.double())
        if out.stress is not None:
            stress_err.append(out.stress.detach().double() - _stress_target(data).double())
    if not total:
        raise ValueError("potential metrics: expected at least one batch, got none")
    force = torch.cat(force_err)
    metrics = {
        "energy_mae": float(torch.cat(per_atom).abs().mean()) * MEV,
        "energy_mae_total": float(torch.cat(total).abs().mean()),
        "force_rmse": float(force.pow(2).mean().sqrt()),
        "force_mae": float(force.abs().mean()),
    }
    if stress_err and len(stress_err) == len(total):
        stress = torch.cat(stress_err)
        metrics["stress_mae"] = float(stress.abs().mean()) * MEV
        metrics["stress_rmse"] = float(stress.pow(2).mean().sqrt()) * MEV
    return metrics


def graphs_of(loader: Iterable) -> list[Data]:
    """Every graph of a loader's batches (``Batch.to_data_list``), in order."""
    graphs: list[Data] = []
    for batch in loader:
        graphs.extend(batch.to_data_list() if isinstance(batch, Batch) else [batch])
    return graphs


def labelled_batches(model: nn.Module, graphs: Sequence[Data], batch_size: int = 16) -> list[Batch]:
    """``graphs`` with labels (``energy``, ``force``, optionally ``stress``) in batches of ``batch_size``, cast to
    ``model``'s dtype and moved to its device; stresses are kept only when every graph has one.

    Raises ``ValueError`` for no graphs or a graph without energy or forces, naming the graph."""
    from geoadapt.models.potential import model_dtype
    from geoadapt.structure import to_dtype

    if not graphs:
        raise ValueError("graphs: expected at least one labelled graph, got none")
    for i, graph in enumerate(graphs):
        for key in ("energy", "force"):
            if graph.get(key) is None:
                raise ValueError(f"graphs[{i}]: expected labels 'energy' and 'force', got no {key!r}")
    if not all(g.get("stress") is not None for g in graphs):
        graphs = [g.clone() for g in graphs]
        for g in graphs:
            g.stress = None  # a batch mixes graphs with and without stress only without it
    dtype = model_dtype(model)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    chunks = [list(graphs[i : i + batch_size]) for i in range(0, len(graphs), batch_size)]
    return [to_dtype(Batch.from_data_list(chunk), dtype).to(device) for chunk in chunks]


def forgetting_metrics(model: nn.Module, pseudolabelled: Sequence[Data]) -> dict[str, float]:
    """:func:`potential_metrics` of ``model`` against labels the source model gave ``pseudolabelled`` before
    adaptation (:func:`geoadapt.train.replay.pseudolabel`), each key prefixed ``forgetting_``: how far the model
    moved on what it knew, in the units of the target metrics beside them (the source model scores 0)."""
    metrics = potential_metrics(model, labelled_batches(model, pseudolabelled))
    return {f"forgetting_{key}": value for key, value in metrics.items()}
