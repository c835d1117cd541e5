"""Interatomic potentials: an energy model ``(B, 1)``, its forces ``-dE/dpos`` ``(N, 3)`` and its stress ``(B, 3, 3)``.

An energy model returns one invariant row per graph (``spec.output`` ``0e``, graph level), which
is what the equivariance machinery, the regularizers and the Trainer expect of any model. Forces
are a second, node-level output: :func:`potential` returns both (a model may supply its own
``potential(data)``; otherwise forces come from autograd on ``pos``), and :class:`Forces` is the
node-level view of the same model (``spec.output`` ``1o``), so the equivariance of forces is
measured like that of any other output: ``equivariance_error(Forces(model), batch, group, Forces(model).spec)``.

Stress, for systems periodic in 3D (``pbc`` all true, ``cell`` ``(B, 3, 3)`` with lattice vectors as rows), is the
strain derivative ``σ = (1/V) dE/dε`` in eV/Å³ with ASE's sign (positive: the cell pulls inwards, as under
tension). :func:`autograd_potential` applies a symmetric strain ``ε`` (zero) to both ``pos -> pos (I + ε)`` and
``cell -> cell (I + ε)`` and differentiates, so any energy model that reads ``data.pos`` and ``data.cell`` (its
periodic edges ``pos[j] - pos[i] + shift @ cell``, see :mod:`geoadapt.models.neighbours`) gets stress.

Per-element energy shift (:class:`EnergyShift`): a potential whose energy holds a term ``sum_atoms shift[z]``
(eV) exposes ``elements``, ``energy_shift()`` and ``add_energy_shift(change)``; then
:func:`geoadapt.models.energy_shift.refit_energy_shift` and
:func:`~geoadapt.models.energy_shift.set_isolated_atom_energies` work on it.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from geoadapt.spec import Spec
from geoadapt.structure import GraphData, graph_index, num_graphs


@dataclass
class PotentialOutput:
    """Energy ``(B, 1)`` in eV, forces ``(N, 3)`` in eV/Å and, when asked for, stress ``(B, 3, 3)`` in eV/Å³."""

    energy: Tensor
    forces: Tensor
    stress: Tensor | None = None


def check_known_elements(
    known: Iterable[int], asked: Iterable[int], what: str, who: str = "the model", error: type[ValueError] = ValueError
) -> None:
    """``error`` (one line: ``{what}: expected elements known to {who} [...], got [...]``) when ``asked`` holds an
    atomic number that is not in ``known`` (a potential's ``elements``)."""
    known = {int(z) for z in known}
    unknown = sorted({int(z) for z in asked} - known)
    if unknown:
        raise error(f"{what}: expected elements known to {who} {sorted(known)}, got {unknown}")


@runtime_checkable
class EnergyShift(Protocol):
    """A potential with a per-element energy shift: ``E = E_rest + sum over atoms of shift[z]`` (eV).

    ``elements``: the atomic numbers the model knows. ``energy_shift()``: the shift of each of them
    (atomic number -> eV). ``add_energy_shift(change)``: add ``change[z]`` eV to the shift of each element named
    (the rest of the model unchanged, the shift kept as trainable or frozen as it was).
    """

    elements: Sequence[int]

    def energy_shift(self) -> dict[int, float]: ...

    def add_energy_shift(self, change: Mapping[int, float]) -> None: ...


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype of ``model``'s first floating parameter (torch's default dtype when it has none)."""
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.get_default_dtype())


def cell_volumes(data: GraphData, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """``cell`` ``(B, 3, 3)`` and its volume ``(B,)`` in Å³; ``ValueError`` unless every graph is periodic in 3D."""
    from geoadapt.models.neighbours import periodic_system

    cell, pbc = periodic_system(data, dtype)
    flat = (~pbc.all(dim=1)).nonzero()
    if cell is None or flat.numel():
        graph = int(flat[0]) if flat.numel() else 0
        raise ValueError(
            f"stress: expected systems periodic in 3D (pbc all True, with a cell), got pbc "
            f"{pbc[graph].tolist()} in graph {graph}; stress is defined only for a 3D-periodic system"
        )
    volume = torch.linalg.det(cell).abs()
    return cell, volume


def autograd_potential(model: nn.Module, data: GraphData, stress: bool = False) -> PotentialOutput:
    """``E = model(data)`` ``(B, 1)``, ``F = -dE/dpos`` ``(N, 3)`` and (``stress``) ``σ = (1/V) dE/dε`` by autograd.

    Works in evaluation and under ``torch.no_grad()`` (gradients are switched on inside). When the
    caller records gradients, the outputs keep their graph (``create_graph``), so a force or stress loss can
    train the model; otherwise they come back detached. ``pos`` (and ``cell``) are cast to the model's dtype.
    """
    create_graph = torch.is_grad_enabled()
    dtype = model_dtype(model)
    with torch.enable_grad():
        pos = data.pos.to(dtype)
        if not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        moved = copy.copy(data)
        moved.pos, inputs, volume = pos, [pos], None
        if stress:
            cell, volume = cell_volumes(data, dtype)
            strain = torch.zeros(num_graphs(data), 3, 3, dtype=dtype, device=pos.device, requires_grad=True)
            symmetric = (strain + strain.transpose(-1, -2)) / 2
            batch = graph_index(data).to(pos.device)
            moved.pos = pos + torch.einsum("ni,nij->nj", pos, symmetric[batch])
            moved.cell = cell.to(pos.device) + cell.to(pos.device) @ symmetric
            inputs.append(strain)
        energy = model(moved)
        if energy.dim() != 2 or energy.shape[1] != 1:
            raise ValueError(f"energy model output: expected shape (graphs, 1), got {tuple(energy.shape)}")
        grads = torch.autograd.grad(
            energy.sum(), inputs, create_graph=create_graph, allow_unused=True, materialize_grads=True
        )
    forces = -grads[0]
    sigma = grads[1] / volume.to(grads[1].device)[:, None, None] if stress else None
    if not create_graph:
        energy, forces = energy.detach(), forces.detach()
        sigma = sigma.detach() if sigma is not None else None
    return PotentialOutput(energy, forces, sigma)


def _takes_stress(method: object) -> bool:
    try:
        return "stress" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


def potential(model: nn.Module, data: GraphData, stress: bool = False) -> PotentialOutput:
    """Energy and forces (and stress) of ``model`` on ``data``: the model's own ``potential`` when it has one
    (and, for stress, when it takes ``stress=``), else autograd on ``model(data)``."""
    own = getattr(model, "potential", None)
    if callable(own) and not stress:
        return own(data)
    if callable(own) and _takes_stress(own):
        return own(data, stress=True)
    return autograd_potential(model, data, stress)


class Forces(nn.Module):
    """The node-level force view of an energy model: ``Forces(model)(data)`` is ``(N, 3)``.

    Shares the wrapped model's parameters; its ``spec`` is the model's input Spec with output
    ``1o`` at node level, and its ``symmetry`` is the model's.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        spec: Spec = model.spec
        if spec.output != Spec(output="0e").output or spec.output_level != "graph":
            got = f"{spec.output} at {spec.output_level} level"
            raise ValueError(f"model spec output: expected a graph-level energy '1x0e', got {got}")
        self.model = model
        self.spec = Spec(
            fields=dict(spec.fields), output="1o", positions=spec.positions, output_level="node", levels=spec.levels
        )
        self.symmetry = getattr(model, "symmetry", None)

    def forward(self, data: GraphData) -> Tensor:
        return potential(self.model, data).forces
