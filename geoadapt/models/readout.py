"""Graph-level readouts and heads shared by the backbones."""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.nn import global_add_pool, global_mean_pool
from torch_geometric.utils import softmax

READOUTS = ("sum", "mean", "attention")


class Readout(nn.Module):
    """Pool node features ``(N, d)`` to graph features ``(B, d)``: sum, mean or attention.

    Attention weights come from invariant scalars, so on irreps features pass ``gate_dim``: the
    number of leading scalar channels the gate may read (the weighted sum stays equivariant).
    """

    def __init__(self, how: str = "sum", dim: int = 0, gate_dim: int | None = None) -> None:
        super().__init__()
        if how not in READOUTS:
            raise ValueError(f"readout: expected one of {READOUTS}, got {how!r}")
        self.how = how
        self.gate_dim = gate_dim if gate_dim is not None else dim
        if how == "attention":
            self.gate = nn.Sequential(
                nn.Linear(self.gate_dim, max(self.gate_dim, 1)),
                nn.SiLU(),
                nn.Linear(max(self.gate_dim, 1), 1),
            )

    def forward(self, x: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        if self.how == "sum":
            return global_add_pool(x, batch, num_graphs)
        if self.how == "mean":
            return global_mean_pool(x, batch, num_graphs)
        score = softmax(self.gate(x[:, : self.gate_dim]), batch, num_nodes=num_graphs)
        return global_add_pool(score * x, batch, num_graphs)


def mlp(dims: list[int], act: type[nn.Module] = nn.SiLU) -> nn.Sequential:
    """Linear layers with ``act`` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


class VectorHead(nn.Module):
    """Equivariant ``1o`` output from invariant node features and positions.

    ``v_graph = Σ_i φ(h_i) (pos_i - centroid)`` (graph level) or ``v_i = φ(h_i) (pos_i - centroid)``
    (node level): rotates with the input, ignores translations, for any invariant backbone.
    """

    def __init__(self, dim: int, channels: int = 1, node_level: bool = False) -> None:
        super().__init__()
        self.weight = mlp([dim, dim, channels])
        self.node_level = node_level

    def forward(self, h: Tensor, pos: Tensor, batch: Tensor, num_graphs: int) -> Tensor:
        from torch_geometric.nn import global_add_pool, global_mean_pool

        rel = pos - global_mean_pool(pos, batch, num_graphs)[batch]
        vectors = (self.weight(h)[:, :, None] * rel[:, None, :]).flatten(1)  # (N, channels * 3)
        return vectors if self.node_level else global_add_pool(vectors, batch, num_graphs)
