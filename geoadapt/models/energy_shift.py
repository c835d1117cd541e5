"""The per-element energy shift of a potential: refit by least squares, or set from isolated-atom energies (E0s).

Works on any model implementing :class:`~geoadapt.models.potential.EnergyShift` (``elements``,
``energy_shift()``, ``add_energy_shift(change)``), SevenNet among them. A new energy reference (another DFT
code, functional or pseudopotential set) moves every energy by about a constant per atom of each element; these
two functions absorb that constant into the shift so fine-tuning starts from the right reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from geoadapt.models.potential import EnergyShift, check_known_elements, model_dtype
from geoadapt.structure import to_dtype


@dataclass
class ShiftRefit:
    """Result of :func:`refit_energy_shift`.

    Attributes:
        change: eV added to the energy shift of each element (atomic number -> eV).
        rank: rank of the (structures x elements) composition matrix; below the number of elements
            only the combinations the data determines are fitted (minimum-norm solution).
        mae_before, mae_after: mean absolute energy error per atom (eV/atom) on the fitted data.
    """

    change: dict[int, float]
    rank: int
    mae_before: float
    mae_after: float


def _check_shift(model: nn.Module) -> None:
    if not isinstance(model, EnergyShift):
        raise TypeError(
            f"model: expected a potential with a per-element energy shift (elements, energy_shift(), "
            f"add_energy_shift(change); see geoadapt.models.potential.EnergyShift), got {type(model).__name__}"
        )


def predict_energies(model: nn.Module, graphs: Sequence[Data], batch_size: int = 32) -> Tensor:
    """Energies ``(len(graphs),)`` of ``model`` on ``graphs`` (float64, no gradients); positions (and cells) are
    cast to the model's dtype first."""
    dtype = model_dtype(model)
    out = []
    with torch.no_grad():
        for start in range(0, len(graphs), batch_size):
            batch = to_dtype(Batch.from_data_list(list(graphs[start : start + batch_size])), dtype)
            out.append(model(batch).reshape(-1).to(torch.float64))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def refit_energy_shift(model: nn.Module, graphs: Sequence[Data], batch_size: int = 32) -> ShiftRefit:
    """Refit the per-element energy shift of ``model`` by least squares on a new energy reference.

    ``graphs`` carry ``z`` ``(N,)``, ``pos`` ``(N, 3)`` and ``energy`` (eV, one value per graph). Solves
    ``min_d sum_m (E_m - Ê_m - sum_e n_me d_e)^2`` over the elements ``e`` present (``n_me``: atoms of element
    ``e`` in structure ``m``) and adds ``d_e`` to the shift through ``model.add_energy_shift``; the network and
    everything else stay as they are.
    """
    _check_shift(model)
    graphs = list(graphs)
    if not graphs:
        raise ValueError("graphs: expected at least one labelled structure, got none")
    missing = [i for i, g in enumerate(graphs) if getattr(g, "energy", None) is None]
    if missing:
        raise ValueError(
            f"graphs: expected an 'energy' field on every graph, missing on {len(missing)} (first {missing[0]})"
        )
    target = torch.cat([g.energy.reshape(-1).to(torch.float64) for g in graphs])
    if target.numel() != len(graphs):
        raise ValueError(f"energy: expected one value per graph ({len(graphs)}), got {target.numel()}")
    present = sorted({int(v) for g in graphs for v in g.z})
    check_known_elements(model.elements, present, "graphs z")
    column = {z: i for i, z in enumerate(present)}
    counts = torch.zeros(len(graphs), len(present), dtype=torch.float64)
    for m, g in enumerate(graphs):
        for v in g.z.tolist():
            counts[m, column[int(v)]] += 1
    atoms = counts.sum(1)
    residual = target - predict_energies(model, graphs, batch_size)
    solution = torch.linalg.lstsq(counts, residual.unsqueeze(-1), driver="gelsd")
    change = solution.solution.squeeze(-1)
    after = residual - counts @ change
    model.add_energy_shift({z: float(d) for z, d in zip(present, change.tolist())})
    return ShiftRefit(
        change={z: float(d) for z, d in zip(present, change)},
        rank=int(solution.rank),
        mae_before=float((residual.abs() / atoms).mean()),
        mae_after=float((after.abs() / atoms).mean()),
    )


def isolated_atom_energies(model: nn.Module, elements: Sequence[int]) -> dict[int, float]:
    """The model's energy (eV) of one atom of each element alone in vacuum (no neighbours)."""
    dtype = model_dtype(model)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    graphs = [
        Data(z=torch.tensor([int(z)], device=device), pos=torch.zeros(1, 3, dtype=dtype, device=device))
        for z in elements
    ]
    energies = predict_energies(model, graphs) if graphs else torch.zeros(0)
    return {int(z): float(e) for z, e in zip(elements, energies)}


def set_isolated_atom_energies(model: nn.Module, e0s: Mapping[int, float]) -> dict[int, float]:
    """Shift ``model``'s per-element energies so that one isolated atom of each element in ``e0s`` (atomic number
    -> eV, e.g. :attr:`geoadapt.io.AtomsDataset.e0s` from ``config_type=IsolatedAtom`` frames) has exactly that
    energy. Returns the change added to each element's shift (eV)."""
    _check_shift(model)
    check_known_elements(model.elements, e0s, "e0s")
    predicted = isolated_atom_energies(model, sorted(int(z) for z in e0s))
    change = {z: float(e0s[z]) - predicted[z] for z in predicted}
    model.add_energy_shift(change)
    return change
