"""The shared group API: groups, their batched elements, and their actions on data and outputs.

>>> from geoadapt.groups import SO3, Permutation
>>> group = Permutation() * SO3()
"""

from geoadapt.groups.base import Element, Group, ProductGroup
from geoadapt.groups.commuting import why_not_commuting
from geoadapt.groups.default import default_group
from geoadapt.groups.euclidean import E3, O3, SE3, SO3, Translation
from geoadapt.groups.permutation import Permutation
from geoadapt.groups.planar import SO2, Cyclic, Dihedral
from geoadapt.groups.signflip import SignFlip

_BY_NAME = {
    "so3": SO3,
    "o3": O3,
    "e3": E3,
    "se3": SE3,
    "translation": Translation,
    "perm": Permutation,
    "permutation": Permutation,
    "signflip": SignFlip,
    "so2": SO2,
}


def group_from_name(name: str) -> Group:
    """Build a group from a short name: ``so3``, ``o3``, ``e3``, ``se3``, ``translation``, ``perm``,
    ``signflip``, ``so2``, ``c4`` / ``d8`` (any n), or a product joined by ``*`` (``"perm*so3"``)."""
    parts = [p.strip().lower() for p in name.split("*")]
    if len(parts) > 1:
        return ProductGroup(*[group_from_name(p) for p in parts])
    key = parts[0]
    if key in _BY_NAME:
        return _BY_NAME[key]()
    if key[:1] in ("c", "d") and key[1:].isdigit():
        return (Cyclic if key[0] == "c" else Dihedral)(int(key[1:]))
    known = sorted(_BY_NAME) + ["c<n>", "d<n>"]
    raise ValueError(f"group name: expected one of {known} (or a product with '*'), got {name!r}")


__all__ = [
    "Element",
    "Group",
    "default_group",
    "SO3",
    "O3",
    "E3",
    "SE3",
    "Translation",
    "Permutation",
    "SignFlip",
    "Cyclic",
    "Dihedral",
    "SO2",
    "ProductGroup",
    "group_from_name",
    "why_not_commuting",
]
