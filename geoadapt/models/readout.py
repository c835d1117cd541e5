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
