"""Node relabelling: the symmetric group acting on the nodes of each graph independently.

Convention (one place): an element is a LongTensor ``perm`` and ``new[i] = old[perm[i]]``.
For a PyG batch the element is one permutation of all ``N`` nodes that never leaves a graph
(block diagonal), so the batch vector is unchanged; for point clouds ``(B, N, 3)`` it is ``(B, N)``.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from geoadapt.groups.base import Group
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, field_level, graph_index, is_graph, is_image, is_index_field


def block_permutation(batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A uniformly random permutation of the nodes of each graph, ``(N,)``, from the batch vector ``(N,)``."""
    keys = torch.rand(batch.shape[0], generator=generator, dtype=torch.float64).to(batch.device)
    # Graph ids are integers and keys lie in [0, 1): sorting id + key shuffles within each graph only.
    return torch.argsort(batch.to(torch.float64) + keys)


class Permutation(Group):
    """Permutations of node order. ``Permutation(num_nodes)`` fixes the size for :meth:`sample`."""

    name = "Permutation"
    acts_on = "nodes"

    def __init__(self, num_nodes: int | None = None) -> None:
        self.num_nodes = num_nodes

    def _need_size(self) -> int:
        if self.num_nodes is None:
            raise ValueError(
                "Permutation.num_nodes: expected an int to sample without data, got None; "
                "use sample_like(data) for graphs"
            )
        return self.num_nodes

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, num_nodes)`` independent uniform permutations."""
        return torch.argsort(torch.rand(n, self._need_size(), generator=generator), dim=-1)

    def sample_like(self, data: AnyData, generator: torch.Generator | None = None) -> Tensor:
        """A block-diagonal permutation ``(N,)`` for a graph batch, ``(B, N)`` for point clouds."""
        if is_graph(data):
            return block_permutation(graph_index(data), generator)
        if is_image(data):
            raise TypeError("Permutation acts on graphs and point clouds, not on images")
        B, N = data.shape[:2]
        return torch.argsort(torch.rand(B, N, generator=generator), dim=-1).to(data.device)

    def identity(self, n: int = 1) -> Tensor:
        return torch.arange(self._need_size()).expand(n, -1).clone()

    def compose(self, a: Tensor, b: Tensor) -> Tensor:
        # act(a, act(b, x)) = x[b][a] = x[b[a]]
        return torch.gather(b, -1, a)

    def inverse(self, a: Tensor) -> Tensor:
        return torch.argsort(a, dim=-1)

    def size(self, g: Tensor) -> int:
        return 1 if g.dim() == 1 else g.shape[0]

    def describe(self, g: Tensor, index: int) -> str:
        return f"Permutation of the nodes of graph {index}"

    def act(self, g: Tensor, data: AnyData, spec: Spec) -> AnyData:
        if is_image(data):
            raise TypeError("Permutation acts on graphs and point clouds, not on images")
        if not is_graph(data):
            return torch.gather(data, 1, g.to(data.device)[..., None].expand_as(data))
        if g.dim() != 1 or g.shape[0] != data.num_nodes:
            raise ValueError(
                f"permutation: expected shape ({data.num_nodes},) for this graph batch, got {tuple(g.shape)}"
            )
        g = g.to(graph_index(data).device)
        inverse = torch.argsort(g)
        out = copy.copy(data)
        for key in data.keys():
            value = data[key]
            if key in ("batch", "ptr") or not isinstance(value, Tensor) or value.dim() == 0:
                continue
            if is_index_field(key):
                out[key] = inverse[value]  # old node j is now called inverse[j]
            elif field_level(data, key, spec) == "node":
                out[key] = value[g]
        return out

    def act_output(self, g: Tensor, y: Tensor, spec: Spec, batch: Tensor | None = None) -> Tensor:
        if spec.output_level == "graph" and y.dim() == 2:
            return y  # graph-level outputs do not see node order
        g = g.to(y.device)
        if y.dim() == 3:
            return torch.gather(y, 1, g[..., None].expand_as(y))
        return y[g]

    def __repr__(self) -> str:
        return "Permutation()" if self.num_nodes is None else f"Permutation({self.num_nodes})"
