"""SchNet (Schütt et al. 2017) from PyG: continuous-filter convolutions on distances, E(3) invariant."""

from __future__ import annotations

from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn.models import SchNet as PygSchNet

from geoadapt.models.geometry import radius_edges, refuse_periodic
from geoadapt.models.registry import register
from geoadapt.spec import Spec
from geoadapt.structure import graph_index


class _RadiusGraph(nn.Module):
    """SchNet's interaction graph without torch-cluster: edges within ``cutoff`` and their lengths."""

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        self.cutoff = cutoff

    def forward(self, pos: Tensor, batch: Tensor) -> tuple[Tensor, Tensor]:
        edge_index = radius_edges(pos, batch, self.cutoff)
        return edge_index, (pos[edge_index[0]] - pos[edge_index[1]]).norm(dim=-1)


@register("schnet")
class SchNet(nn.Module):
    """PyG ``SchNet`` on atomic numbers ``z`` and ``pos``; one invariant output per graph (``out_dim`` 0e).

    ``out_dim > 1`` adds an output layer on top of PyG's scalar prediction heads (one SchNet per output
    would waste compute), built from its last hidden layer.
    """

    def __init__(
        self,
        hidden: int = 64,
        num_filters: int = 64,
        num_interactions: int = 3,
        num_gaussians: int = 25,
        cutoff: float = 5.0,
        readout: str = "add",
        out_dim: int = 1,
    ) -> None:
        super().__init__()
        self.net = PygSchNet(
            hidden,
            num_filters,
            num_interactions,
            num_gaussians,
            cutoff,
            interaction_graph=_RadiusGraph(cutoff),
            readout=readout,
        )
        if out_dim != 1:
            self.net.lin2 = nn.Linear(hidden // 2, out_dim)
        self.spec = Spec(fields={"pos": "1o"}, output=f"{out_dim}x0e")
        self.symmetry = "Permutation x E3"

    def forward(self, data: Batch) -> Tensor:
        refuse_periodic(data, "schnet")
        return self.net(data.z, data.pos, graph_index(data)).reshape(-1, self.spec.output.dim)
