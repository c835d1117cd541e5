"""EGNN (Satorras et al. 2021): E(n)-equivariant message passing on scalars and coordinates.

Written by hand: PyG has no EGNN layer. Messages ``m_ij = φ_e(h_i, h_j, |x_i - x_j|^2, a_ij)``,
coordinates ``x_i += mean_j (x_i - x_j) φ_x(m_ij)``, features ``h_i += φ_h(h_i, Σ_j m_ij)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from geoadapt.featurize import ATOM_DIM
from geoadapt.models.geometry import radius_edges, refuse_periodic
from geoadapt.models.readout import Readout, VectorHead, mlp
from geoadapt.models.registry import register
from geoadapt.spec import Spec
from geoadapt.structure import graph_index, num_graphs


class EGNNLayer(nn.Module):
    """One E(n)-equivariant layer: ``(h, x) -> (h', x')``."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.edge = mlp([2 * hidden + 1, hidden, hidden])
        self.coord = nn.Sequential(mlp([hidden, hidden, 1]), nn.Tanh())  # bounded steps keep training stable
        self.node = mlp([2 * hidden, hidden, hidden])

    def forward(self, h: Tensor, x: Tensor, edge_index: Tensor) -> tuple[Tensor, Tensor]:
        src, dst = edge_index
        rel = x[dst] - x[src]
        messages = torch.nn.functional.silu(
            self.edge(torch.cat([h[dst], h[src], rel.pow(2).sum(-1, keepdim=True)], -1))
        )
        x = x + scatter(rel * self.coord(messages), dst, dim=0, dim_size=x.shape[0], reduce="mean")
        h = h + self.node(torch.cat([h, scatter(messages, dst, dim=0, dim_size=h.shape[0], reduce="sum")], -1))
        return h, x


@register("egnn")
class EGNN(nn.Module):
    """E(n)-equivariant GNN with scalar (``output="Nx0e"``) or vector (``"1o"``) outputs, graph or node level.

    Shapes: ``x`` ``(N, in_dim)``, ``pos`` ``(N, 3)`` -> ``(B, dim)`` or ``(N, dim)``.
    Node-level ``1o`` outputs are the learned displacements ``x_i^L - x_i^0``.
    """

    def __init__(
        self,
        in_dim: int = ATOM_DIM,
        output: str = "1x0e",
        hidden: int = 64,
        num_layers: int = 3,
        cutoff: float = 5.0,
        readout: str = "sum",
        output_level: str = "graph",
    ) -> None:
        super().__init__()
        self.spec = Spec(fields={"pos": "1o", "x": f"{in_dim}x0e"}, output=output, output_level=output_level)
        out = self.spec.output
        self.vector = all(ir.l == 1 and ir.p == -1 for _, ir in out)
        if not self.vector and not all(ir.l == 0 and ir.p == 1 for _, ir in out):
            raise ValueError(f"EGNN output: expected only 0e or only 1o irreps, got {out}")
        self.cutoff, self.output_level = cutoff, output_level
        self.embed = nn.Linear(in_dim, hidden)
        self.layers = nn.ModuleList(EGNNLayer(hidden) for _ in range(num_layers))
        self.readout = Readout(readout, hidden)
        self.head = mlp([hidden, hidden, out.dim]) if not self.vector else None
        self.vector_head = (
            VectorHead(hidden, out.num_irreps, node_level=output_level == "node") if self.vector else None
        )
        self.symmetry = "Permutation x E3"

    def forward(self, data: Batch) -> Tensor:
        batch, n = graph_index(data), num_graphs(data)
        refuse_periodic(data, "egnn")
        edge_index = radius_edges(data.pos, batch, self.cutoff)
        h, x = self.embed(data.x), data.pos
        for layer in self.layers:
            h, x = layer(h, x, edge_index)
        if self.vector:
            return self.vector_head(h, x, batch, n)
        if self.output_level == "graph":
            h = self.readout(h, batch, n)
        return self.head(h)
