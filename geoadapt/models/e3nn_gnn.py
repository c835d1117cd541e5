"""An e3nn tensor-product message-passing network (TFN / NequIP style), E(3) equivariant.

Edges: atom pairs within ``cutoff`` Å (or bonds). Messages: ``TP(h_j, Y(r_ij); w(|r_ij|))`` with
spherical harmonics ``Y`` and a radial MLP ``w`` on a smooth radial basis; a gated nonlinearity
after each layer; any output irreps (``0e`` energy-like, ``1o`` dipole-like).
"""

from __future__ import annotations

import math

import torch
from e3nn import nn as enn
from e3nn import o3
from e3nn.math import soft_one_hot_linspace
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from geoadapt.data.featurize import ATOM_DIM
from geoadapt.models.geometry import radius_edges
from geoadapt.models.readout import Readout
from geoadapt.models.registry import register
from geoadapt.spec import Spec
from geoadapt.structure import graph_index, num_graphs


class Interaction(nn.Module):
    """One equivariant layer: tensor-product messages, sum aggregation, self-interaction, gate."""

    def __init__(
        self,
        irreps_in: o3.Irreps,
        irreps_sh: o3.Irreps,
        irreps_hidden: o3.Irreps,
        num_basis: int,
        radial_hidden: int,
    ) -> None:
        super().__init__()
        scalars = o3.Irreps([(m, ir) for m, ir in irreps_hidden if ir.l == 0])
        gated = o3.Irreps([(m, ir) for m, ir in irreps_hidden if ir.l > 0])
        acts = [torch.nn.functional.silu if ir.p == 1 else torch.tanh for _, ir in scalars]
        self.gate = enn.Gate(scalars, acts, o3.Irreps(f"{gated.num_irreps}x0e"), [torch.sigmoid], gated)
        self.tp = o3.FullyConnectedTensorProduct(irreps_in, irreps_sh, self.gate.irreps_in, shared_weights=False)
        self.radial = enn.FullyConnectedNet([num_basis, radial_hidden, self.tp.weight_numel], torch.nn.functional.silu)
        self.self_interaction = o3.Linear(irreps_in, self.gate.irreps_in)
        self.irreps_out = self.gate.irreps_out

    def forward(self, h: Tensor, edge_index: Tensor, sh: Tensor, basis: Tensor, norm: float) -> Tensor:
        src, dst = edge_index
        messages = self.tp(h[src], sh, self.radial(basis))
        aggregated = scatter(messages, dst, dim=0, dim_size=h.shape[0], reduce="sum") / norm
        return self.gate(self.self_interaction(h) + aggregated)


@register("e3nn_gnn")
class E3nnGNN(nn.Module):
    """Equivariant GNN on ``x`` (scalars) and ``pos``; outputs of irreps ``output`` per graph or node.

    Shapes: ``x`` ``(N, in_dim)``, ``pos`` ``(N, 3)`` -> ``(B, output.dim)`` or ``(N, output.dim)``.
    """

    # Per-edge tensor-product weights make big batches memory-bound on CPU: a 25% larger batch costs
    # ~31% more, a separate forward of the copies less (benchmarks/regularizer_overhead.py). So the
    # Trainer runs this model's transformed copies in their own forward.
    stack_copies = False

    def __init__(
        self,
        in_dim: int = ATOM_DIM,
        output: str = "1x0e",
        hidden: str = "16x0e+8x1o+4x2e",
        num_layers: int = 2,
        lmax: int = 2,
        cutoff: float = 4.0,
        num_basis: int = 8,
        radial_hidden: int = 32,
        edges: str = "radius",
        readout: str = "sum",
        output_level: str = "graph",
        avg_neighbors: float = 8.0,
    ) -> None:
        super().__init__()
        if edges not in ("radius", "bonds"):
            raise ValueError(f"edges: expected 'radius' or 'bonds', got {edges!r}")
        self.cutoff, self.num_basis, self.edges = cutoff, num_basis, edges
        self.norm = math.sqrt(avg_neighbors)
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        self.embed = o3.Linear(f"{in_dim}x0e", o3.Irreps([(m, ir) for m, ir in o3.Irreps(hidden) if ir.l == 0]))
        self.layers = nn.ModuleList()
        irreps = self.embed.irreps_out
        for _ in range(num_layers):
            layer = Interaction(irreps, self.irreps_sh, o3.Irreps(hidden), num_basis, radial_hidden)
            self.layers.append(layer)
            irreps = layer.irreps_out
        self.irreps_hidden = irreps
        self.output_level = output_level
        self.readout = Readout(readout, irreps.dim, gate_dim=irreps.count("0e"))
        self.head = o3.Linear(irreps, output)
        self.spec = Spec(fields={"pos": "1o", "x": f"{in_dim}x0e"}, output=output, output_level=output_level)
        self.symmetry = "Permutation x E3"

    def forward(self, data: Batch) -> Tensor:
        batch = graph_index(data)
        if self.edges == "radius":
            edge_index = radius_edges(data.pos, batch, self.cutoff)
        else:
            edge_index = data.edge_index
        vec = data.pos[edge_index[0]] - data.pos[edge_index[1]]
        sh = o3.spherical_harmonics(self.irreps_sh, vec, normalize=True, normalization="component")
        length = vec.norm(dim=-1)
        basis = soft_one_hot_linspace(
            length, 0.0, self.cutoff, self.num_basis, basis="smooth_finite", cutoff=True
        ) * math.sqrt(self.num_basis)
        h = self.embed(data.x)
        for layer in self.layers:
            h = layer(h, edge_index, sh, basis, self.norm)
        if self.output_level == "graph":
            h = self.readout(h, batch, num_graphs(data))
        return self.head(h)
