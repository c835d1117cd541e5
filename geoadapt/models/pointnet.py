"""Point-cloud backbones: PointNet++-style (PyG ``PointNetConv``) and DGCNN (PyG ``EdgeConv``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import EdgeConv, PointNetConv, global_max_pool

from geoadapt.featurize import ATOM_DIM
from geoadapt.models.geometry import knn_edges
from geoadapt.models.readout import mlp
from geoadapt.models.registry import register
from geoadapt.spec import Spec
from geoadapt.structure import graph_index, num_graphs


def _features(data: Batch, in_dim: int) -> Tensor | None:
    return data.x[:, :in_dim] if in_dim else None


@register("pointnet")
class PointNet(nn.Module):
    """PointNet layers on kNN neighbourhoods: ``h_i = max_j γ(h_j, pos_j - pos_i)``, then global max pool.

    Uses raw relative positions: permutation and translation invariant, not rotation invariant.
    ``in_dim=0`` for bare point clouds; default reads the molecular atom features.
    """

    def __init__(
        self, in_dim: int = ATOM_DIM, out_dim: int = 1, hidden: int = 64, num_layers: int = 2, k: int = 8
    ) -> None:
        super().__init__()
        self.in_dim, self.k = in_dim, k
        dims = [in_dim] + [hidden] * num_layers
        self.convs = nn.ModuleList(PointNetConv(mlp([a + 3, hidden, b], nn.ReLU)) for a, b in zip(dims[:-1], dims[1:]))
        self.head = mlp([hidden, hidden, out_dim], nn.ReLU)
        fields = {"pos": "1o", **({"x": f"{in_dim}x0e"} if in_dim else {})}
        self.spec = Spec(fields=fields, output=f"{out_dim}x0e")
        self.symmetry = "Permutation x Translation"

    def forward(self, data: Batch) -> Tensor:
        batch = graph_index(data)
        edge_index = knn_edges(data.pos, batch, self.k)
        h = _features(data, self.in_dim)
        for conv in self.convs:
            h = torch.relu(conv(h, data.pos, edge_index))
        return self.head(global_max_pool(h, batch, num_graphs(data)))


@register("dgcnn")
class DGCNN(nn.Module):
    """DGCNN (Wang et al. 2019): EdgeConv on a kNN graph rebuilt in feature space at every layer.

    PyG's ``DynamicEdgeConv`` needs the compiled pyg-lib; the graph is rebuilt here with a pure-torch kNN
    and fed to PyG's ``EdgeConv``. Reads ``pos`` (and ``x`` when ``in_dim > 0``) as features.
    """

    def __init__(
        self, in_dim: int = ATOM_DIM, out_dim: int = 1, hidden: int = 64, num_layers: int = 2, k: int = 8
    ) -> None:
        super().__init__()
        self.in_dim, self.k = in_dim, k
        dims = [in_dim + 3] + [hidden] * num_layers
        self.convs = nn.ModuleList(
            EdgeConv(mlp([2 * a, hidden, b], nn.ReLU), aggr="max") for a, b in zip(dims[:-1], dims[1:])
        )
        self.head = mlp([hidden * num_layers, hidden, out_dim], nn.ReLU)
        fields = {"pos": "1o", **({"x": f"{in_dim}x0e"} if in_dim else {})}
        self.spec = Spec(fields=fields, output=f"{out_dim}x0e")
        self.symmetry = "Permutation"

    def forward(self, data: Batch) -> Tensor:
        batch = graph_index(data)
        h = data.pos if not self.in_dim else torch.cat([data.pos, data.x[:, : self.in_dim]], -1)
        outs = []
        for conv in self.convs:
            h = conv(h, knn_edges(h, batch, self.k))
            outs.append(h)
        return self.head(global_max_pool(torch.cat(outs, -1), batch, num_graphs(data)))
