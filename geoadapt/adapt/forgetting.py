"""Errors of a potential on labelled graphs, and forgetting: the errors against the frozen source model.

:func:`potential_errors` gives the mean absolute errors of energy (meV/atom), forces (meV/Å) and, where the
labels have them, stress (meV/Å³) of any geoadapt energy model. :func:`forgetting` is the same measurement on
structures like the pretraining data (:func:`geoadapt.data.source_like.source_like_structures`) labelled by the
source model before adaptation (:func:`geoadapt.adapt.replay.pseudolabel`): how far adaptation moved the model on
what it knew. The source model scores 0 on its own labels, so every number is a change.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from geoadapt.models.potential import model_dtype, potential
from geoadapt.structure import to_dtype

MILLI = 1000.0


def _check_labels(graphs: Sequence[Data]) -> bool:
    """Whether the graphs carry stresses; ``ValueError`` when energy or forces are missing on one of them."""
    if not graphs:
        raise ValueError("graphs: expected at least one labelled graph, got none")
    for i, graph in enumerate(graphs):
        for key in ("energy", "force"):
            if graph.get(key) is None:
                raise ValueError(f"graphs[{i}]: expected labels 'energy' and 'force', got no {key!r}")
    flags = [g.get("stress") is not None for g in graphs]
    return all(flags)


def _errors(model: nn.Module, batch: Batch, stress: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    """Per graph energy error per atom (eV), per component force error (eV/Å) and per component stress error."""
    out = potential(model, batch, stress=stress)
    atoms = torch.bincount(batch.batch, minlength=batch.num_graphs).to(torch.float64)
    energy = (out.energy.double().reshape(-1) - batch.energy.double().reshape(-1)) / atoms
    force = (out.forces.double() - batch.force.double()).reshape(-1)
    sigma = (out.stress.double() - batch.stress.double()).reshape(-1) if stress else None
    return energy, force, sigma


def potential_errors(model: nn.Module, graphs: Sequence[Data], batch_size: int = 16) -> dict[str, float]:
    """Mean absolute errors of ``model`` on labelled ``graphs`` (``energy``, ``force``, optionally ``stress``).

    Returns ``energy_mae`` (meV/atom), ``force_mae`` (meV/Å, per component), ``force_rmse`` (meV/Å) and, when every
    graph has a stress label, ``stress_mae`` (meV/Å³, per component of the 3x3 tensor). Positions and cells are cast
    to the model's dtype; the model runs in evaluation mode and is left in the mode it was in.
    """
    with_stress = _check_labels(graphs)
    dtype, was_training = model_dtype(model), model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    energy, force, sigma = [], [], []
    try:
        for start in range(0, len(graphs), batch_size):
            batch = to_dtype(Batch.from_data_list(list(graphs[start : start + batch_size])), dtype).to(device)
            with torch.no_grad():
                e, f, s = _errors(model, batch, with_stress)
            energy.append(e.cpu())
            force.append(f.cpu())
            if s is not None:
                sigma.append(s.cpu())
    finally:
        model.train(was_training)
    forces = torch.cat(force)
    out = {
        "energy_mae": float(torch.cat(energy).abs().mean()) * MILLI,
        "force_mae": float(forces.abs().mean()) * MILLI,
        "force_rmse": float(forces.pow(2).mean().sqrt()) * MILLI,
    }
    if with_stress:
        out["stress_mae"] = float(torch.cat(sigma).abs().mean()) * MILLI
    return out


def forgetting(model: nn.Module, pseudolabelled: Sequence[Data], batch_size: int = 16) -> dict[str, float]:
    """How far ``model`` moved from the source model on structures the source model labelled
    (:func:`geoadapt.adapt.replay.pseudolabel`, before adaptation): :func:`potential_errors` against those labels.

    Keys ``energy_mae`` (meV/atom), ``force_mae`` and ``force_rmse`` (meV/Å) and, for crystals labelled with stress,
    ``stress_mae`` (meV/Å³). A training loop can log them each epoch, e.g. as ``val_forgetting_<key>``.
    """
    return potential_errors(model, pseudolabelled, batch_size)
