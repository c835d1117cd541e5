"""Sign flips of eigenvector encodings: each Laplacian eigenvector is defined only up to its sign."""

from __future__ import annotations

import copy
import itertools

import torch
from torch import Tensor

from geoadapt.groups.base import Group
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, graph_index, is_graph, num_graphs


class SignFlip(Group):
    """``(Z_2)^k`` acting on the ``k`` columns of a node field (default ``"eigvecs"``), per graph.

    Elements are ``(n, k)`` tensors of ±1; column ``j`` of graph ``b`` is multiplied by ``g[b, j]``.
    Outputs are invariant. The field is taken as a stack of scalars: a Spec that gives it
    rotating irreps would make sign flips and rotations fail to commute in a product.
    """

    name = "SignFlip"
    acts_on = "columns"

    def __init__(self, field: str = "eigvecs", num_vectors: int | None = None) -> None:
        self.field = field
        self.num_vectors = num_vectors

    def _k(self, data: AnyData | None = None) -> int:
        if data is not None:
            if not is_graph(data) or self.field not in data:
                raise ValueError(
                    f"field {self.field!r}: SignFlip needs this node field in the graph data, "
                    f"got {type(data).__name__} without it"
                )
            return data[self.field].shape[1]
        if self.num_vectors is None:
            raise ValueError("SignFlip.num_vectors: expected an int to sample without data, got None")
        return self.num_vectors

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        bits = torch.randint(0, 2, (n, self._k()), generator=generator)
        return (bits * 2 - 1).to(torch.get_default_dtype())

    def sample_like(self, data: AnyData, generator: torch.Generator | None = None) -> Tensor:
        k = self._k(data)
        bits = torch.randint(0, 2, (num_graphs(data), k), generator=generator)
        return (bits * 2 - 1).to(data[self.field].dtype).to(data[self.field].device)

    def identity(self, n: int = 1) -> Tensor:
        return torch.ones(n, self._k())

    def compose(self, a: Tensor, b: Tensor) -> Tensor:
        return a * b

    def inverse(self, a: Tensor) -> Tensor:
        return a.clone()

    @property
    def is_finite(self) -> bool:
        return self.num_vectors is not None and self.num_vectors <= 12

    def elements(self) -> Tensor | None:
        if not self.is_finite:
            return None
        return torch.tensor(list(itertools.product((1.0, -1.0), repeat=self._k())))

    def act(self, g: Tensor, data: AnyData, spec: Spec) -> AnyData:
        k = self._k(data)
        value = data[self.field]
        if g.shape[-1] != k or g.shape[0] not in (1, num_graphs(data)):
            raise ValueError(
                f"field {self.field!r}: expected sign flips of shape (1 or {num_graphs(data)}, {k}), "
                f"got {tuple(g.shape)}"
            )
        signs = g.to(value.device, value.dtype)
        out = copy.copy(data)
        out[self.field] = value * (signs[graph_index(data)] if g.shape[0] > 1 else signs)
        return out

    def act_output(self, g: Tensor, y: Tensor, spec: Spec, batch: Tensor | None = None) -> Tensor:
        return y

    def __repr__(self) -> str:
        return f"SignFlip(field={self.field!r})"
