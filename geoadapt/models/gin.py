"""GIN (Xu et al. 2019) with PyG's ``GINEConv``/``GINConv``, optional positional encodings."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import GINConv, GINEConv

from geoadapt.featurize import ATOM_DIM, BOND_DIM
from geoadapt.models.readout import Readout, mlp
from geoadapt.models.registry import register
from geoadapt.spec import Spec
from geoadapt.structure import num_graphs


@register("gin")
class GIN(nn.Module):
    """Graph Isomorphism Network: permutation invariant (graph outputs) / equivariant (node outputs).

    Reads ``x`` (and ``edge_attr`` when ``edge_dim > 0``); ``pe`` names a positional-encoding field
    (``"eigvecs"`` Laplacian eigenvectors, ``"rwse"`` random-walk) concatenated to ``x``.
    Laplacian eigenvectors are sign-ambiguous, so with ``pe="eigvecs"`` the model is not invariant
    to :class:`~geoadapt.groups.SignFlip` unless trained to be.

    Shapes: ``batch.x`` ``(N, in_dim)`` -> ``(B, out_dim)`` (or ``(N, out_dim)`` for node outputs).
    """

    def __init__(
        self,
        in_dim: int = ATOM_DIM,
        out_dim: int = 1,
        hidden: int = 64,
        num_layers: int = 3,
        edge_dim: int = BOND_DIM,
        pe: str | None = None,
        pe_dim: int = 0,
        readout: str = "sum",
        output_level: str = "graph",
        dropout: float = 0.0,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        self.pe, self.edge_dim = pe, edge_dim
        self.input = nn.Linear(in_dim + (pe_dim if pe else 0), hidden)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        for _ in range(num_layers):
            net = mlp([hidden, hidden, hidden], act=nn.ReLU)
            self.convs.append(GINEConv(net, edge_dim=edge_dim) if edge_dim else GINConv(net))
            self.norms.append(nn.BatchNorm1d(hidden) if batch_norm else nn.Identity())
        self.dropout = nn.Dropout(dropout)
        self.readout = Readout(readout, hidden * (num_layers + 1))
        self.output_level = output_level
        self.head = mlp([hidden * (num_layers + 1), hidden, out_dim], act=nn.ReLU)
        fields = {"x": f"{in_dim}x0e"}
        if pe:
            fields[pe] = f"{pe_dim}x0e"
        if edge_dim:
            fields["edge_attr"] = f"{edge_dim}x0e"
        self.spec = Spec(fields=fields, output=f"{out_dim}x0e", positions=(), output_level=output_level)
        self.symmetry = "Permutation"

    def node_features(self, data: Batch) -> Tensor:
        """Concatenated features of every layer (jumping knowledge): ``(N, hidden * (num_layers + 1))``."""
        x = data.x if not self.pe else torch.cat([data.x, data[self.pe]], dim=-1)
        h = self.input(x)
        hs = [h]
        for conv, norm in zip(self.convs, self.norms):
            h = conv(h, data.edge_index, data.edge_attr) if self.edge_dim else conv(h, data.edge_index)
            h = self.dropout(torch.relu(norm(h)))
            hs.append(h)
        return torch.cat(hs, dim=-1)

    def forward(self, data: Batch) -> Tensor:
        h = self.node_features(data)
        if self.output_level == "graph":
            batch = data.batch if data.batch is not None else h.new_zeros(h.shape[0], dtype=torch.long)
            h = self.readout(h, batch, num_graphs(data))
        return self.head(h)
