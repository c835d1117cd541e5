"""A Lennard-Jones pair potential written as a plain geoadapt energy model (reads ``pos`` and ``cell``), with a
per-element energy shift: the smallest model that is periodic and implements the energy-shift protocol, checked
against ASE's own ``LennardJones`` calculator."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn
from torch_geometric.utils import scatter

from geoadapt.models.neighbours import edge_vectors, graph_neighbours
from geoadapt.spec import Spec
from geoadapt.structure import GraphData, num_graphs


class LennardJones(nn.Module):
    """``E = sum_{i<j} 4 ε ((σ/r)^12 - (σ/r)^6) - u(rc)`` over pairs closer than ``rc`` (ASE's ``smooth=False``
    form), plus ``shift[z]`` per atom. Energies ``(B, 1)`` in eV."""

    spec = Spec(fields={"pos": "1o"}, output="0e")
    symmetry = "Permutation x E3"

    def __init__(self, epsilon: float = 0.4, sigma: float = 2.3, rc: float = 5.0, elements: tuple = (29, 79)) -> None:
        super().__init__()
        self.epsilon = nn.Parameter(torch.tensor(epsilon))
        self.sigma = nn.Parameter(torch.tensor(sigma))
        self.rc = rc
        self.elements = list(elements)
        self.shift = nn.Parameter(torch.zeros(max(elements) + 1), requires_grad=False)

    def pair(self, r: Tensor) -> Tensor:
        c6 = (self.sigma / r) ** 6
        return 4 * self.epsilon * (c6 * c6 - c6)

    def forward(self, data: GraphData) -> Tensor:
        pos = data.pos
        if pos.dtype != self.epsilon.dtype:  # as strict as an e3nn network: callers must cast
            raise TypeError(f"pos: expected {self.epsilon.dtype}, got {pos.dtype}")
        neighbours, batch, cell = graph_neighbours(data, pos, self.rc)
        r = edge_vectors(pos, neighbours, batch, cell).norm(dim=-1)
        at_cutoff = self.pair(torch.tensor(self.rc, dtype=pos.dtype))
        pairs = 0.5 * (self.pair(r) - at_cutoff)  # every pair comes twice in a full neighbour list
        n = num_graphs(data)
        energy = scatter(pairs, batch[neighbours.edge_index[1]], dim=0, dim_size=n, reduce="sum")
        energy = energy + scatter(self.shift[data.z.long()], batch, dim=0, dim_size=n, reduce="sum")
        return energy.unsqueeze(-1)

    def energy_shift(self) -> dict[int, float]:
        return {z: float(self.shift[z]) for z in self.elements}

    def add_energy_shift(self, change: Mapping[int, float]) -> None:
        with torch.no_grad():
            for z, delta in change.items():
                self.shift[int(z)] += float(delta)
