"""Regularizers from a plain configuration (a YAML mapping, or a dict written in Python).

The keys are those of ``geoadapt adapt``: ``regularizers`` (a group name, or entries ``{group: so3, <option>:
<value>, ...}`` with any option of :class:`EquivarianceRegularizer`), ``mixed: true`` (one
:class:`MixedEquivarianceRegularizer` over them) or ``constrained: {epsilon: 0.001, ...}`` (each entry as a
:class:`ConstrainedEquivarianceRegularizer`, options from that class). Options YAML reads as text (``1e-3``) become
numbers of the option's type; an unknown option or a value of the wrong kind is a :class:`ConfigError`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from typing import Any

from torch import nn

from geoadapt.errors import ConfigError
from geoadapt.groups import Group, group_from_name
from geoadapt.regularizers.combined import ConstrainedEquivarianceRegularizer, MixedEquivarianceRegularizer
from geoadapt.regularizers.equivariance import EquivarianceRegularizer
from geoadapt.spec import Spec


def regularizers_from_config(config: Mapping[str, Any], spec: Spec) -> list[nn.Module]:
    """The regularizers ``config`` asks for, on outputs described by ``spec``.

    Args:
        config: ``regularizers`` (a name, a mapping or a list of them; a ``group`` may be a name or a
            :class:`~geoadapt.groups.Group`), ``mixed`` (bool) and ``constrained`` (``None``/``False``, or a
            mapping of :class:`ConstrainedEquivarianceRegularizer` options, ``{}`` for its defaults).
        spec: the Spec the regularizers compare outputs with (the force Spec for potentials).

    Returns:
        A list of modules, each called as ``reg(model, batch, outputs)`` by the Trainer.
    """
    entries = config.get("regularizers") or []
    if isinstance(entries, (str, Mapping, Group)):
        entries = [entries]
    mixed, constrained = bool(config.get("mixed")), config.get("constrained")
    wants_constraint = constrained is not None and constrained is not False
    if (wants_constraint or mixed) and not entries:
        asked = "constrained" if wants_constraint else "mixed"
        raise ConfigError(f"{asked}: expected at least one entry in regularizers (e.g. regularizers=[so3]), got none")
    if wants_constraint and mixed:
        raise ConfigError("constrained: expected either constrained or mixed=true, got both")
    terms = [_term(entry, spec) for entry in entries]
    if mixed:
        return [MixedEquivarianceRegularizer(terms)]
    if wants_constraint:
        options = _constraint_options(constrained)
        return [ConstrainedEquivarianceRegularizer(t, **options) for t in terms]
    return terms


def _term(entry: Any, spec: Spec) -> EquivarianceRegularizer:
    """One :class:`EquivarianceRegularizer` from a group name, a group, or a mapping with a ``group`` key."""
    entry = {"group": entry} if isinstance(entry, (str, Group)) else entry
    if not isinstance(entry, Mapping) or "group" not in entry:
        raise ConfigError(f"regularizers: expected entries with a 'group' key, got {entry!r}")
    options = dict(entry)
    group = options.pop("group")
    group = group if isinstance(group, Group) else group_from_name(group)
    known_options(options, "regularizers", EquivarianceRegularizer, ("group", "spec", "name", "layers", "schedule"))
    options = as_numbers(options, "regularizers", numeric_options(EquivarianceRegularizer))
    return EquivarianceRegularizer(group, spec, name=repr(group), **options)


def _constraint_options(constrained: Any) -> dict[str, Any]:
    if not isinstance(constrained, Mapping):
        raise ConfigError(f"constrained: expected a mapping such as {{epsilon: 0.001}}, got {constrained!r}")
    options = dict(constrained)
    known_options(options, "constrained", ConstrainedEquivarianceRegularizer, ("regularizer", "name"))
    options = as_numbers(options, "constrained", numeric_options(ConstrainedEquivarianceRegularizer))
    if options.get("homotopy") is not None:
        homotopy = options["homotopy"]
        if not (isinstance(homotopy, (list, tuple)) and len(homotopy) == 2):
            raise ConfigError(f"constrained.homotopy: expected [epsilon_start, epochs], got {homotopy!r}")
        start = as_numbers({"start": homotopy[0]}, "constrained.homotopy", {"start": (float, None)})["start"]
        options["homotopy"] = (start, homotopy[1])
    return options


def known_options(options: Mapping[str, Any], field: str, cls: type, internal: tuple[str, ...]) -> None:
    """Refuse keys that ``cls`` does not take, naming the field, the keys it takes and the unknown ones."""
    known = sorted(p for p in inspect.signature(cls.__init__).parameters if p not in ("self", *internal))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"{field}: expected keys among {known}, got unknown {unknown}")


def numeric_options(cls: type) -> dict[str, tuple[type, str | None]]:
    """The options of ``cls`` annotated as a plain ``int`` or ``float``: name -> (that type, ``"auto"`` for those
    that also take text (``float | str``), else ``None``). The annotations are strings: geoadapt's modules use
    ``from __future__ import annotations``."""
    plain = re.compile(r"^(int|float)( \| (str|None))?$")
    found = {n: plain.match(str(p.annotation)) for n, p in inspect.signature(cls).parameters.items()}
    return {
        n: (int if m.group(1) == "int" else float, "auto" if m.group(3) == "str" else None)
        for n, m in found.items()
        if m
    }


def as_numbers(options: dict[str, Any], field: str, kinds: Mapping[str, tuple[type, str | None]]) -> dict[str, Any]:
    """Numbers YAML reads as text (``1e-9`` is a string in YAML 1.1) become numbers of the option's type;
    anything else (or a fraction for an int option) is an error naming the option. ``kinds``: name -> (type,
    the one word the option also takes, or ``None``)."""
    for key, (kind, word) in kinds.items():
        value = options.get(key)
        if isinstance(value, str) and value != word:
            try:
                value = float(value)
            except ValueError:
                also = f" or {word!r}" if word else ""
                raise ConfigError(f"{field}.{key}: expected a number{also}, got {value!r}") from None
        if kind is int and isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{field}.{key}: expected a whole number, got {value!r}")
            value = int(value)
        if value is not None:
            options[key] = value
    return options
