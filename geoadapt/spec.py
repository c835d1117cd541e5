"""`Spec`: which data field carries which irreps, and the irreps of a model's output."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from e3nn import o3

LEVELS = ("node", "edge", "graph")
OUTPUT_LEVELS = ("graph", "node")


def _as_irreps(name: str, value: str | o3.Irreps) -> o3.Irreps:
    try:
        return o3.Irreps(value)
    except (ValueError, AssertionError, TypeError) as err:
        raise ValueError(f"Spec field {name!r}: expected an irreps string like '1o' or '16x0e', got {value!r}") from err


@dataclass(frozen=True)
class Spec:
    """How a group acts on a model's inputs and outputs.

    Args:
        fields: data field -> irreps of one row, e.g. ``{"pos": "1o", "x": "16x0e", "force": "1o"}``.
            Fields not named here are left untouched by rotations (they are still reordered by
            node permutations, which must keep a graph consistent).
        output: irreps of one row of the model output, e.g. ``"0e"`` (invariant) or ``"1o"`` (a vector).
        positions: fields that are points in space; translations act only on these.
            A position named here but absent from ``fields`` is taken as ``1o``.
        output_level: ``"graph"`` (one output row per graph / sample) or ``"node"`` (one per node).
        output_positions: indices of the entries of ``output`` that are predicted points in space (each
            ``mul x 1o``): translations move them (``y + t``), rotations turn them like any vector. For
            ``output="0e+1o"`` with the vector a predicted position, ``output_positions=(1,)``.
        levels: optional explicit level (``node``, ``edge`` or ``graph``) of a field; by default it is
            read from the PyG ``Data`` (row count against nodes, edges and graphs).

    Example:
        >>> spec = Spec(fields={"pos": "1o", "x": "11x0e"}, output="0e")
        >>> spec.irreps("pos")
        1x1o
    """

    fields: Mapping[str, str | o3.Irreps] = field(default_factory=dict)
    output: str | o3.Irreps = "0e"
    positions: tuple[str, ...] = ("pos",)
    output_level: str = "graph"
    levels: Mapping[str, str] = field(default_factory=dict)
    output_positions: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        fields = {k: _as_irreps(k, v) for k, v in dict(self.fields).items()}
        for name in self.positions:
            fields.setdefault(name, o3.Irreps("1o"))
            if fields[name] != o3.Irreps("1o"):
                raise ValueError(f"Spec position field {name!r}: expected irreps 1x1o, got {fields[name]}")
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "output", _as_irreps("output", self.output))
        object.__setattr__(self, "positions", tuple(self.positions))
        if self.output_level not in OUTPUT_LEVELS:
            raise ValueError(f"Spec output_level: expected one of {OUTPUT_LEVELS}, got {self.output_level!r}")
        for key, level in dict(self.levels).items():
            if level not in LEVELS:
                raise ValueError(f"Spec levels[{key!r}]: expected one of {LEVELS}, got {level!r}")
        object.__setattr__(self, "levels", dict(self.levels))
        object.__setattr__(self, "output_positions", tuple(self.output_positions))
        entries = list(self.output)  # type: ignore[arg-type]
        for index in self.output_positions:
            if not isinstance(index, int) or not 0 <= index < len(entries):
                raise ValueError(
                    f"Spec output_positions: expected indices of entries of output {self.output} "
                    f"(0 to {len(entries) - 1}), got {index!r}"
                )
            if entries[index].ir != o3.Irrep("1o"):
                raise ValueError(
                    f"Spec output_positions: entry {index} of output {self.output} must be points (1o), "
                    f"got {entries[index]}"
                )
        if len(set(self.output_positions)) != len(self.output_positions):
            raise ValueError(f"Spec output_positions: expected distinct indices, got {self.output_positions}")

    def irreps(self, name: str) -> o3.Irreps:
        """Irreps of field ``name`` (``KeyError`` if the Spec does not name it)."""
        return self.fields[name]  # type: ignore[index]

    def check_tensor(self, name: str, value: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``value`` is ``(rows, dim)`` with ``dim`` the irreps dimension."""
        expected = self.irreps(name).dim
        actual = value.shape[-1] if value.dim() >= 1 else None
        if value.dim() != 2 or actual != expected:
            raise ValueError(
                f"field {name!r}: expected shape (rows, {expected}) for irreps {self.irreps(name)}, "
                f"got {tuple(value.shape)}"
            )

    def check_output(self, y: torch.Tensor) -> None:
        """Raise ``ValueError`` unless ``y`` is ``(rows, output.dim)``."""
        if y.dim() != 2 or y.shape[-1] != self.output.dim:  # type: ignore[union-attr]
            raise ValueError(
                f"model output: expected shape (rows, {self.output.dim}) for irreps {self.output}, "  # type: ignore[union-attr]
                f"got {tuple(y.shape)}"
            )

    def to_dict(self) -> dict:
        """Plain-data form (strings only), for checkpoints and configs."""
        return {
            "fields": {k: str(v) for k, v in self.fields.items()},
            "output": str(self.output),
            "positions": list(self.positions),
            "output_level": self.output_level,
            "levels": dict(self.levels),
            "output_positions": list(self.output_positions),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> Spec:
        """Inverse of :meth:`to_dict`."""
        return cls(
            fields=dict(d.get("fields", {})),
            output=d.get("output", "0e"),
            positions=tuple(d.get("positions", ("pos",))),
            output_level=d.get("output_level", "graph"),
            levels=dict(d.get("levels", {})),
            output_positions=tuple(d.get("output_positions", ())),
        )
