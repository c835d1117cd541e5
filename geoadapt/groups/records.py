"""Groups as plain data: a record (class name and options) that files store, and the registry that rebuilds it.

A checkpoint never pickles a group: it stores ``{"group": "Translation", "options": {"scale": 2.0}}`` (a product
as ``{"product": [...]}``) and loading rebuilds it from :data:`GROUP_CLASSES`. A group of your own is stored the
same way once registered with :func:`register_group` (in the process that saves and in the one that loads).
"""

from __future__ import annotations

import inspect
from typing import Any

from geoadapt.groups.base import Group, ProductGroup
from geoadapt.groups.euclidean import E3, O3, SE3, SO3, Translation
from geoadapt.groups.permutation import Permutation
from geoadapt.groups.planar import SO2, Cyclic, Dihedral
from geoadapt.groups.signflip import SignFlip

GROUP_CLASSES: dict[str, type[Group]] = {
    cls.__name__: cls for cls in (SO3, O3, E3, SE3, Translation, Permutation, SignFlip, Cyclic, Dihedral, SO2)
}
_PLAIN = (str, int, float, bool, type(None))


def register_group(cls: type[Group]) -> type[Group]:
    """Class decorator: let checkpoints store groups of ``cls`` by name and the options of its ``__init__``
    (each read back from the attribute of the same name)."""
    if not (isinstance(cls, type) and issubclass(cls, Group)):
        raise TypeError(f"register_group: expected a subclass of geoadapt.groups.Group, got {cls!r}")
    GROUP_CLASSES[cls.__name__] = cls
    return cls


def _options(group: Group) -> dict[str, Any]:
    """The keyword arguments that rebuild ``group``: its ``__init__`` parameters read from its attributes."""
    if isinstance(group, E3):  # E3 keeps its options in its factors
        options = {"scale": group.translations.scale}
        return options if isinstance(group, SE3) else {**options, "proper": group.name == "SE3"}
    options = {}
    for name, parameter in inspect.signature(type(group).__init__).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if not hasattr(group, name):
            raise ValueError(
                f"group {group!r}: expected an attribute {name!r} holding its __init__ option, got none "
                "(needed to store it by name and options)"
            )
        options[name] = getattr(group, name)
    return options


def group_to_record(group: Group) -> dict[str, Any]:
    """``group`` as plain data, checked to rebuild to the same group (same ``repr``)."""
    if isinstance(group, ProductGroup):
        return {"product": [group_to_record(f) for f in group.factors]}
    name = type(group).__name__
    if GROUP_CLASSES.get(name) is not type(group):
        raise ValueError(
            f"group {group!r}: expected a registered group class to store it by name, got {type(group).__qualname__} "
            "(decorate it with geoadapt.groups.register_group)"
        )
    options = _options(group)
    bad = {k: type(v).__name__ for k, v in options.items() if not isinstance(v, _PLAIN)}
    if bad:
        raise ValueError(f"group {group!r}: expected plain options (str, number, bool, None), got {bad}")
    record = {"group": name, "options": options}
    if repr(group_from_record(record)) != repr(group):
        raise ValueError(f"group {group!r}: its options {options} rebuild a different group")
    return record


def group_from_record(record: str | dict[str, Any] | None) -> Group | None:
    """Inverse of :func:`group_to_record` (a short name such as ``"perm*so3"`` is read too)."""
    from geoadapt.groups import group_from_name

    if record is None:
        return None
    if isinstance(record, str):
        return group_from_name(record)
    if not isinstance(record, dict):
        raise ValueError(f"group record: expected a name or a dict, got {type(record).__name__}")
    if "product" in record:
        return ProductGroup(*[group_from_record(r) for r in record["product"]])
    name = record.get("group")
    if name not in GROUP_CLASSES:
        raise ValueError(
            f"group record: expected one of {sorted(GROUP_CLASSES)}, got {name!r} "
            "(a group of your own must be registered with geoadapt.groups.register_group before loading)"
        )
    return GROUP_CLASSES[name](**record.get("options", {}))
