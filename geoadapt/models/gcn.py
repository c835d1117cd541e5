"""GCN (Kipf and Welling 2017) with PyG's ``GCNConv``."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import GCNConv

from geoadapt.featurize import ATOM_DIM
from geoadapt.models.readout import Readout, mlp
from geoadapt.models.registry import register
from geoadapt.spec import Spec
from geoadapt.structure import graph_index, num_graphs


@register("gcn")
class GCN(nn.Module):
    """Graph convolutional network; permutation invariant (graph outputs). ``pe`` as in :class:`GIN`.

    Shapes: ``x`` ``(N, in_dim)`` -> ``(B, out_dim)`` or ``(N, out_dim)``.
    """

    def __init__(
        self,
        in_dim: int = ATOM_DIM,
        out_dim: int = 1,
        hidden: int = 64,
        num_layers: int = 3,
        pe: str | None = None,
        pe_dim: int = 0,
        readout: str = "mean",
        output_level: str = "graph",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.pe = pe
        self.input = nn.Linear(in_dim + (pe_dim if pe else 0), hidden)
        self.convs = nn.ModuleList(GCNConv(hidden, hidden) for _ in range(num_layers))
        self.dropout = nn.Dropout(dropout)
        self.readout = Readout(readout, hidden)
        self.output_level = output_level
        self.head = mlp([hidden, hidden, out_dim], act=nn.ReLU)
        fields = {"x": f"{in_dim}x0e", **({pe: f"{pe_dim}x0e"} if pe else {})}
        self.spec = Spec(fields=fields, output=f"{out_dim}x0e", positions=(), output_level=output_level)
        self.symmetry = "Permutation"

    def forward(self, data: Batch) -> Tensor:
        x = data.x if not self.pe else torch.cat([data.x, data[self.pe]], dim=-1)
        h = self.input(x)
        for conv in self.convs:
            h = h + self.dropout(torch.relu(conv(h, data.edge_index)))
        if self.output_level == "graph":
            h = self.readout(h, graph_index(data), num_graphs(data))
        return self.head(h)
