"""A coordinate-naive graph network: raw ``pos`` enters as three more input features.

This is the typical large pretrained model we adapt: expressive, not equivariant by construction,
approximately rotation invariant only when trained with rotation augmentation.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import GINEConv

from geoadapt.featurize import ATOM_DIM, BOND_DIM
from geoadapt.models.readout import Readout, mlp
from geoadapt.models.registry import register
from geoadapt.spec import Spec
from geoadapt.structure import graph_index, num_graphs


@register("naive_gnn")
class NaiveGNN(nn.Module):
    """Message passing over ``[x, pos]`` (and bond features); graph outputs of irreps ``out_dim x 0e``.

    ``center=True`` subtracts each graph's centroid first (translation invariance, no rotation symmetry).
    Shapes: ``x`` ``(N, in_dim)``, ``pos`` ``(N, 3)`` -> ``(B, out_dim)``.
    """

    def __init__(
        self,
        in_dim: int = ATOM_DIM,
        out_dim: int = 1,
        hidden: int = 64,
        num_layers: int = 3,
        edge_dim: int = BOND_DIM,
        readout: str = "sum",
        center: bool = True,
    ) -> None:
        super().__init__()
        self.center = center
        self.input = nn.Linear(in_dim + 3, hidden)
        self.convs = nn.ModuleList(
            GINEConv(mlp([hidden, hidden, hidden]), edge_dim=edge_dim) for _ in range(num_layers)
        )
        self.readout = Readout(readout, hidden)
        self.head = mlp([hidden, hidden, out_dim])
        self.spec = Spec(
            fields={"pos": "1o", "x": f"{in_dim}x0e", "edge_attr": f"{edge_dim}x0e"},
            output=f"{out_dim}x0e",
        )
        self.symmetry = "Permutation" + (" x Translation" if center else "")

    def forward(self, data: Batch) -> Tensor:
        batch = graph_index(data)
        pos = data.pos
        if self.center:
            from torch_geometric.nn import global_mean_pool

            pos = pos - global_mean_pool(pos, batch, num_graphs(data))[batch]
        h = self.input(torch.cat([data.x, pos], dim=-1))
        for conv in self.convs:
            h = h + torch.nn.functional.silu(conv(h, data.edge_index, data.edge_attr))
        return self.head(self.readout(h, batch, num_graphs(data)))
