"""The `Group` interface shared by every symmetry in geoadapt.

Elements are plain tensors (or tuples of tensors, for pairs and products) with a leading batch
axis, so a batch of ``n`` elements is sampled, composed and inverted without Python loops.
``compose(a, b)`` is "apply ``b`` first, then ``a``", so ``act(a, act(b, x)) == act(compose(a, b), x)``.

``G1 * G2`` is the direct product (:class:`ProductGroup`), defined here with the base class it builds on.
Its element is a tuple with one batch of elements per factor; a tuple of actions is an action of the
product only when the factors commute, decided by :func:`~geoadapt.groups.commuting.why_not_commuting`.

Groups with several connected components (``O3``, ``E3``: proper and improper) say so with
``num_cosets``; :meth:`Group.sample_copies` puts copy ``c`` of a stacked batch in coset ``c % num_cosets``,
so a measurement over ``copies >= num_cosets`` copies always sees every component.
"""

from __future__ import annotations

import math
from typing import Union

import torch
from torch import Tensor

from geoadapt.devices import data_device, to_device
from geoadapt.groups.commuting import why_not_commuting
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, num_graphs

Element = Union[Tensor, tuple]  # noqa: UP007 (a runtime alias)


def on_device_of(g: Element, data: AnyData) -> Element:
    """Element(s) ``g`` moved to the device of ``data`` (dtypes kept: rotations stay float64).

    Elements are drawn with the caller's CPU generator, so one seed gives the same elements on any device.
    """
    return to_device(g, data_device(data))


class Group:
    """Base class: a group, its batched elements, and its actions on data and on model outputs.

    ``acts_on`` tells a product whether two actions commute (see :class:`~geoadapt.groups.ProductGroup`):
    ``"nodes"`` (reorders the nodes of each graph), ``"columns"`` (per-graph signs on the columns of one
    field), ``"space"`` (an affine map ``x -> R x + t`` of 3D space, also acting on irreps fields by ``D(R)``;
    such a group describes its maps with :meth:`affine_generators`), or ``None`` (not declared).
    """

    name: str = "group"
    acts_on: str | None = None

    # --- algebra -----------------------------------------------------------------------------
    def sample(self, n: int, generator: torch.Generator | None = None) -> Element:
        """``n`` random elements (Haar-distributed where the group is compact)."""
        raise NotImplementedError

    def identity(self, n: int = 1) -> Element:
        """``n`` copies of the identity element."""
        raise NotImplementedError

    def compose(self, a: Element, b: Element) -> Element:
        """Elementwise product ``a ∘ b`` (``b`` acts first)."""
        raise NotImplementedError

    def inverse(self, a: Element) -> Element:
        """Elementwise inverse."""
        raise NotImplementedError

    def elements(self) -> Element | None:
        """All elements of a finite group, ``None`` for infinite groups."""
        return None

    @property
    def is_finite(self) -> bool:
        """True when :meth:`elements` lists the whole group."""
        return False

    @property
    def num_cosets(self) -> int:
        """Number of cosets :meth:`sample_cosets` can draw from (e.g. 2 for O(3): proper and improper)."""
        return 1

    def affine_generators(self) -> tuple[Tensor, bool] | None:
        """For groups acting on ``"space"``: matrices ``(k, 3, 3)`` whose products are dense in the linear
        parts ``R`` of the group, and whether the group also holds translations. ``None`` otherwise."""
        return None

    def size(self, g: Element) -> int:
        """How many elements the batch ``g`` holds."""
        return (g[0] if isinstance(g, tuple) else g).shape[0]

    def take(self, g: Element, index: Tensor) -> Element:
        """Elements ``g[index]``."""
        if isinstance(g, tuple):
            return tuple(part[index] for part in g)
        return g[index]

    def equal(self, a: Element, b: Element, atol: float = 1e-6) -> bool:
        """True when the two batches of elements agree to ``atol``."""
        pairs = zip(a, b) if isinstance(a, tuple) else [(a, b)]
        return all(torch.allclose(x.to(torch.float64), y.to(torch.float64), atol=atol) for x, y in pairs)

    # --- actions -----------------------------------------------------------------------------
    def sample_like(self, data: AnyData, generator: torch.Generator | None = None) -> Element:
        """One random element per graph (or per sample of a tensor) in ``data``, on the data's device."""
        return on_device_of(self.sample(num_graphs(data), generator), data)

    def sample_cosets(self, data: AnyData, cosets: Tensor, generator: torch.Generator | None = None) -> Element:
        """One random element per graph of ``data`` (on its device); element ``i`` lies in coset ``cosets[i]``.

        ``cosets`` is a LongTensor ``(num_graphs,)`` with values in ``[0, num_cosets)``. Inside its coset
        each element is Haar-random where the group is compact.
        """
        if self.num_cosets == 1:
            return self.sample_like(data, generator)
        raise NotImplementedError(f"{self.name}: sample_cosets is needed for a group with {self.num_cosets} cosets")

    def sample_copies(self, data: AnyData, copies: int, generator: torch.Generator | None = None) -> Element:
        """One element per graph of ``data`` (on its device), which holds ``copies`` stacked copies of a batch of
        ``B`` graphs.

        Copy ``c`` is graphs ``c * B`` to ``(c + 1) * B - 1`` (for tensors: samples), and its elements lie in
        coset ``c % num_cosets``: any measurement over ``copies >= num_cosets`` copies sees every coset
        (for O(3): even copies are rotations, odd copies rotations times ``-I``).
        """
        n = num_graphs(data)
        if copies < 1 or n % copies:
            raise ValueError(f"copies: expected a positive divisor of the {n} graphs in data, got {copies}")
        copy_of_graph = torch.arange(n) // max(n // copies, 1)
        return on_device_of(self.sample_cosets(data, copy_of_graph % self.num_cosets, generator), data)

    def act(self, g: Element, data: AnyData, spec: Spec) -> AnyData:
        """``g · data``: a new object of the same kind; ``data`` is never changed in place."""
        raise NotImplementedError

    def act_output(self, g: Element, y: Tensor, spec: Spec, batch: Tensor | None = None) -> Tensor:
        """``ρ_out(g) y`` for model outputs ``y`` of irreps ``spec.output``.

        ``y`` is ``(rows, spec.output.dim)``; rows are graphs (``spec.output_level == "graph"``) or
        nodes, in which case ``batch`` gives the graph of each node. Point-cloud node outputs may be
        passed as ``(B, N, dim)``.
        """
        raise NotImplementedError

    def describe(self, g: Element, index: int) -> str:
        """Readable form of element ``index`` of the batch ``g`` (for error messages)."""
        one = self.take(g, torch.tensor([index]))
        parts = one if isinstance(one, tuple) else (one,)
        return f"{self.name} element " + ", ".join(str(p[0].tolist()) for p in parts)

    def __mul__(self, other: Group) -> Group:
        """The direct product ``self x other`` (:class:`ProductGroup`; the actions must commute)."""
        return ProductGroup(self, other)

    def __repr__(self) -> str:
        return self.name


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
