"""Direct products ``G1 * G2 * ...``: elements are tuples with one batch of elements per factor."""

from __future__ import annotations

import torch
from torch import Tensor

from geoadapt.groups.base import Group
from geoadapt.spec import Spec
from geoadapt.structure import AnyData


class ProductGroup(Group):
    """The direct product of groups whose actions commute (e.g. ``Permutation() * E3()``).

    Factors act right to left; since they commute the order does not change the result. Do not
    build ``SO3() * Translation()`` (these do not commute on positions): use ``E3``, the semidirect one.
    """

    def __init__(self, *factors: Group) -> None:
        flat: list[Group] = []
        for f in factors:
            flat.extend(f.factors if isinstance(f, ProductGroup) else [f])
        self.factors = tuple(flat)
        self.name = " x ".join(f.name for f in self.factors)

    def _split(self, g: tuple) -> tuple:
        if not isinstance(g, tuple) or len(g) != len(self.factors):
            raise ValueError(
                f"{self.name} element: expected a tuple of {len(self.factors)} parts, got {type(g).__name__}"
            )
        return g

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple:
        return tuple(f.sample(n, generator) for f in self.factors)

    def sample_like(self, data: AnyData, generator: torch.Generator | None = None) -> tuple:
        return tuple(f.sample_like(data, generator) for f in self.factors)

    def identity(self, n: int = 1) -> tuple:
        return tuple(f.identity(n) for f in self.factors)

    def compose(self, a: tuple, b: tuple) -> tuple:
        return tuple(f.compose(x, y) for f, x, y in zip(self.factors, self._split(a), self._split(b)))

    def inverse(self, a: tuple) -> tuple:
        return tuple(f.inverse(x) for f, x in zip(self.factors, self._split(a)))

    @property
    def is_finite(self) -> bool:
        return all(f.is_finite for f in self.factors)

    def elements(self) -> tuple | None:
        if not self.is_finite:
            return None
        lists = [f.elements() for f in self.factors]
        sizes = [f.size(e) for f, e in zip(self.factors, lists)]
        grids = torch.meshgrid(*[torch.arange(s) for s in sizes], indexing="ij")
        return tuple(f.take(e, grid.reshape(-1)) for f, e, grid in zip(self.factors, lists, grids))

    def size(self, g: tuple) -> int:
        return max(f.size(x) for f, x in zip(self.factors, self._split(g)))

    def take(self, g: tuple, index: Tensor) -> tuple:
        return tuple(f.take(x, index) for f, x in zip(self.factors, self._split(g)))

    def equal(self, a: tuple, b: tuple, atol: float = 1e-6) -> bool:
        return all(f.equal(x, y, atol) for f, x, y in zip(self.factors, self._split(a), self._split(b)))

    def describe(self, g: tuple, index: int) -> str:
        return "; ".join(f.describe(x, index) for f, x in zip(self.factors, self._split(g)))

    def act(self, g: tuple, data: AnyData, spec: Spec) -> AnyData:
        for f, x in reversed(list(zip(self.factors, self._split(g)))):
            data = f.act(x, data, spec)
        return data

    def act_output(self, g: tuple, y: Tensor, spec: Spec, batch: Tensor | None = None) -> Tensor:
        for f, x in reversed(list(zip(self.factors, self._split(g)))):
            y = f.act_output(x, y, spec, batch)
        return y

    def __repr__(self) -> str:
        return " * ".join(repr(f) for f in self.factors)
