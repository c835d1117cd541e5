"""When two groups' actions commute, so that a tuple of their actions is an action of their direct product.

``act((a1, a2), x) = a1·(a2·x)`` composes as ``(a1 b1)·((a2 b2)·x)`` only if ``a2`` and ``b1`` commute.
:func:`why_not_commuting` decides that from what each group says it acts on (``Group.acts_on``); it reads
only the few attributes of :class:`ActingGroup`, so it sits below the group classes it judges.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor


class ActingGroup(Protocol):
    """What :func:`why_not_commuting` reads of a group (see :class:`~geoadapt.groups.base.Group`)."""

    name: str
    acts_on: str | None

    @property
    def is_finite(self) -> bool: ...

    def affine_generators(self) -> tuple[Tensor, bool] | None: ...

    def elements(self) -> object: ...


def _space_maps(group: ActingGroup) -> tuple[Tensor, bool] | None:
    """Generators of a group acting on space; a finite custom group with a ``matrix`` method counts too."""
    maps = group.affine_generators()
    if maps is None and group.is_finite and callable(getattr(group, "matrix", None)):
        maps = group.matrix(group.elements()).to(torch.float64), False
    return maps


def _is_identity(R: Tensor) -> bool:
    return bool(torch.allclose(R, torch.eye(3, dtype=R.dtype).expand_as(R), atol=1e-12))


def _kind(group: ActingGroup) -> str | None:
    if group.acts_on in ("nodes", "columns"):
        return group.acts_on
    return "space" if _space_maps(group) is not None else None


def why_not_commuting(a: ActingGroup, b: ActingGroup) -> str | None:
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
