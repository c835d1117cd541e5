"""Direct products ``G1 * G2 * ...``: elements are tuples with one batch of elements per factor.

A tuple of actions is an action of the product only when the factors commute:
``act((a1, a2), x) = a1·(a2·x)`` composes as ``(a1 b1)·((a2 b2)·x)`` only if ``a2`` and ``b1`` commute.
:func:`why_not_commuting` decides that from what each group acts on (``Group.acts_on``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from geoadapt.groups.base import Group
from geoadapt.spec import Spec
from geoadapt.structure import AnyData


def _space_maps(group: Group) -> tuple[Tensor, bool] | None:
    """Generators of a group acting on space; a finite custom group with a ``matrix`` method counts too."""
    maps = group.affine_generators()
    if maps is None and group.is_finite and callable(getattr(group, "matrix", None)):
        maps = group.matrix(group.elements()).to(torch.float64), False
    return maps


def _is_identity(R: Tensor) -> bool:
    return bool(torch.allclose(R, torch.eye(3, dtype=R.dtype).expand_as(R), atol=1e-12))


def _kind(group: Group) -> str | None:
    if group.acts_on in ("nodes", "columns"):
        return group.acts_on
    return "space" if _space_maps(group) is not None else None


def why_not_commuting(a: Group, b: Group) -> str | None:
    """``None`` when the actions of ``a`` and ``b`` commute, else the reason they do not.

    Node permutations commute with every per-graph action (it treats all nodes of a graph alike) but not
    with another permutation; sign flips of a field's columns commute with every action; two maps of
    space ``x -> R x + t`` commute when their linear parts commute and neither group pairs a rotation
    with the other's translations (checked on the generators of each group).
    """
    kinds = (_kind(a), _kind(b))
    for group, other, kind in ((a, b, kinds[0]), (b, a, kinds[1])):
        if kind is None:
            return (
                f"{group!r} does not say what it acts on (Group.acts_on, and affine_generators for maps of "
                f"space), so whether it commutes with {other!r} is unknown"
            )
    if kinds == ("nodes", "nodes"):
        return "two node permutations do not commute; use a single Permutation"
    if "nodes" in kinds or "columns" in kinds:
        return None
    (Ra, ta), (Rb, tb) = _space_maps(a), _space_maps(b)
    for rotating, shifting, R, t in ((a, b, Ra, tb), (b, a, Rb, ta)):
        if t and not _is_identity(R):
            return (
                f"the rotations of {rotating!r} do not commute with the translations of {shifting!r} "
                "(R(x + t) != Rx + t); use E3 (rotations, reflections and translations) or SE3 (rotations and "
                "translations)"
            )
    products = torch.einsum("aij,bjk->abik", Ra, Rb) - torch.einsum("bij,ajk->abik", Rb, Ra)
    if products.abs().max() > 1e-12:
        return f"the rotations of {a!r} and {b!r} do not commute (R1 R2 != R2 R1); use a single group"
    return None


class ProductGroup(Group):
    """The direct product of groups whose actions commute (e.g. ``Permutation() * E3()``).

    Factors act right to left; since they commute the order does not change the result. Factors that do
    not commute raise ``ValueError`` with the reason (see :func:`why_not_commuting`): ``SO3() *
    Translation()`` is refused, ``E3`` / ``SE3`` are the semidirect groups of rotations with translations.
    ``num_cosets`` is the product of the factors'; coset ``c`` splits into one coset per factor
    (mixed radix, first factor fastest).
    """

    def __init__(self, *factors: Group) -> None:
        flat: list[Group] = []
        for f in factors:
            flat.extend(f.factors if isinstance(f, ProductGroup) else [f])
        for i, a in enumerate(flat):
            for b in flat[i + 1 :]:
                reason = why_not_commuting(a, b)
                if reason is not None:
                    raise ValueError(f"ProductGroup({a!r}, {b!r}): the factors must commute, but {reason}")
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

    @property
    def num_cosets(self) -> int:
        return math.prod(f.num_cosets for f in self.factors)

    def sample_cosets(self, data: AnyData, cosets: Tensor, generator: torch.Generator | None = None) -> tuple:
        parts, radix = [], 1
        for f in self.factors:
            parts.append(f.sample_cosets(data, (cosets // radix) % f.num_cosets, generator))
            radix *= f.num_cosets
        return tuple(parts)

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
