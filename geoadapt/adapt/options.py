"""Typed strategy options: one dataclass per strategy, filled from plain values (config files, the CLI,
keyword arguments) with a one-line error naming the option, the expected type and the value."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from geoadapt.adapt.freezing import HEAD_POLICIES

O = TypeVar("O", bound="StrategyOptions")


@dataclass(frozen=True)
class StrategyOptions:
    """Options every strategy takes.

    Args:
        head: name of the prediction-head submodule (``model.head`` for geoadapt backbones).
        head_policy: ``"reuse"`` keeps the pretrained head, ``"new"`` re-initializes it (and it trains).
    """

    head: str = "head"
    head_policy: str = "reuse"

    def __post_init__(self) -> None:
        if self.head_policy not in HEAD_POLICIES:
            raise ValueError(f"head policy: expected one of {HEAD_POLICIES}, got {self.head_policy!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain data (lists, not tuples), for checkpoints and run configs."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def parse_options(cls: type[O], values: Mapping[str, Any], strategy: str) -> O:
    """``cls(**values)`` with every value checked (and converted, e.g. list -> tuple) against the field types.

    Unknown names and wrong types raise ``ValueError`` naming the strategy, the option and the value.
    """
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ValueError(f"strategy {strategy!r}: unknown option {unknown[0]!r} (its options: {sorted(fields)})")
    hints = typing.get_type_hints(cls)
    converted = {name: _coerce(strategy, name, hints[name], value) for name, value in values.items()}
    return cls(**converted)


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is tuple:
        return f"a list of {_type_name(args[0])}"
    if origin is dict:
        return f"a mapping of {_type_name(args[0])} to {_type_name(args[1])}"
    return "None" if hint is type(None) else hint.__name__


def _coerce(strategy: str, name: str, hint: Any, value: Any) -> Any:
    def fail() -> ValueError:
        return ValueError(
            f"strategy {strategy!r} option {name!r}: expected {_type_name(hint)}, got {type(value).__name__} {value!r}"
        )

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(strategy, name, arg, value)
            except ValueError:
                continue
        raise fail()
    if origin is tuple:  # tuple[X, ...]; a string is a comma-separated list, as elsewhere in the CLI
        items = [v for v in value.split(",") if v] if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise fail()
        try:
            return tuple(_coerce(strategy, name, args[0], v) for v in items)
        except ValueError:
            raise fail() from None
    if origin is dict:
        if not isinstance(value, Mapping):
            raise fail()
        try:
            return {_coerce(strategy, name, args[0], k): _coerce(strategy, name, args[1], v) for k, v in value.items()}
        except ValueError:
            raise fail() from None
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if hint is int and isinstance(value, bool):
        raise fail()
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    raise fail()
