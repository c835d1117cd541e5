"""The `Group` interface shared by every symmetry in geoadapt.

Elements are plain tensors (or tuples of tensors, for pairs and products) with a leading batch
axis, so a batch of ``n`` elements is sampled, composed and inverted without Python loops.
``compose(a, b)`` is "apply ``b`` first, then ``a``", so ``act(a, act(b, x)) == act(compose(a, b), x)``.

Groups with several connected components (``O3``, ``E3``: proper and improper) say so with
``num_cosets``; :meth:`Group.sample_copies` puts copy ``c`` of a stacked batch in coset ``c % num_cosets``,
so a measurement over ``copies >= num_cosets`` copies always sees every component.
"""

from __future__ import annotations

from typing import Union

import torch
from torch import Tensor

from geoadapt.spec import Spec
from geoadapt.structure import AnyData

Element = Union[Tensor, tuple]  # noqa: UP007 (a runtime alias)


def on_device_of(g: Element, data: AnyData) -> Element:
    """Element(s) ``g`` moved to the device of ``data`` (dtypes kept: rotations stay float64).

    Elements are drawn with the caller's CPU generator, so one seed gives the same elements on any device.
    """
    from geoadapt.devices import data_device, to_device

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
        from geoadapt.structure import num_graphs

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
        from geoadapt.structure import num_graphs

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
        from geoadapt.groups.product import ProductGroup

        return ProductGroup(self, other)

    def __repr__(self) -> str:
        return self.name
