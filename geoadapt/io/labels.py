"""Where the labels of a frame are, and reading them: energy (eV), forces (eV/Å), stress (eV/Å³).

The default is the convention of the fine-tuning codes (MACE and others): ``REF_energy`` and ``REF_stress`` in
``atoms.info``, ``REF_forces`` in ``atoms.arrays``, and ``config_type=IsolatedAtom`` for the one-atom frames whose
energies are the per-element references (E0s). ASE (3.23 and later) moves plain ``energy`` / ``forces`` /
``stress`` columns of an extxyz file into a ``SinglePointCalculator``; those are read only when asked for
(``keys="calculator"``), since they are often a model's predictions rather than reference labels.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

ISOLATED_ATOM = "IsolatedAtom"


@dataclass(frozen=True)
class Keys:
    """Names of the labels in each frame.

    Attributes:
        energy: ``atoms.info`` key of the total energy (eV).
        forces: ``atoms.arrays`` key of the forces ``(N, 3)`` (eV/Å).
        stress: ``atoms.info`` key of the stress (eV/Å³): Voigt-6 in ASE's order (xx, yy, zz, yz, xz, xy),
            9 values or a 3x3 matrix.
        config_type: ``atoms.info`` key whose value ``IsolatedAtom`` marks an E0 frame.
        calculator: read energy, forces and stress from the frames' calculator results instead.
    """

    energy: str = "REF_energy"
    forces: str = "REF_forces"
    stress: str = "REF_stress"
    config_type: str = "config_type"
    calculator: bool = False


def as_keys(keys: Keys | Mapping[str, object] | str | None) -> Keys:
    """A :class:`Keys` from ``None`` (the ``REF_*`` defaults), ``"calculator"``, a mapping of its fields or itself."""
    if keys is None:
        return Keys()
    if isinstance(keys, Keys):
        return keys
    if keys == "calculator":
        return Keys(calculator=True)
    if isinstance(keys, Mapping):
        names = {f.name for f in dataclasses.fields(Keys)}
        unknown = sorted(set(keys) - names)
        if unknown:
            raise ValueError(f"keys: expected names among {sorted(names)}, got {unknown}")
        return Keys(**keys)  # type: ignore[arg-type]
    raise TypeError(f"keys: expected None, 'calculator', a mapping or a Keys, got {keys!r}")


@dataclass
class Labels:
    """The labels of one frame: energy (eV), forces ``(N, 3)`` (eV/Å) and stress ``(3, 3)`` (eV/Å³) or ``None``."""

    energy: float
    forces: np.ndarray | None
    stress: np.ndarray | None


class LabelError(ValueError):
    """A label missing or malformed; its message names the source, the frame and the key."""


def is_isolated_atom(atoms: Atoms, keys: Keys) -> bool:
    """True for a frame marked ``config_type=IsolatedAtom`` (an E0 frame)."""
    return atoms.info.get(keys.config_type) == ISOLATED_ATOM


def _floats(value: object) -> np.ndarray | None:
    """``value`` as a float array, or ``None`` when it is not numbers (a string, a dict, ...)."""
    try:
        return np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        return None


def _shown(value: object) -> str:
    return repr(value.tolist() if isinstance(value, (np.ndarray, np.generic)) else value)


def _calculator_results(atoms: Atoms) -> dict:
    calc = atoms.calc
    return dict(getattr(calc, "results", {}) or {}) if calc is not None else {}


def _missing(where: str, key: str, atoms: Atoms, keys: Keys, store: str) -> LabelError:
    if keys.calculator:
        return LabelError(
            f"{where} {key!r}: missing from the frame's calculator results {sorted(_calculator_results(atoms))}"
        )
    results = sorted(_calculator_results(atoms))
    hint = (
        f"; the frame has calculator results {results}: read them with keys='calculator'"
        if results
        else f" (has {sorted(getattr(atoms, store))})"
    )
    return LabelError(f"{where} {key!r}: missing{hint}")


def _lookup(atoms: Atoms, keys: Keys, name: str, store: str) -> tuple[str, object | None]:
    """The key used for label ``name`` and its value (``None`` when absent)."""
    if keys.calculator:
        return name, _calculator_results(atoms).get(name)
    key = getattr(keys, name)
    return key, getattr(atoms, store).get(key)


def read_energy(atoms: Atoms, keys: Keys, where: str) -> float:
    """The frame's energy in eV (a finite number)."""
    key, value = _lookup(atoms, keys, "energy", "info")
    if value is None:
        raise _missing(where, key, atoms, keys, "info")
    array = _floats(value)
    if array is None or array.size != 1 or not np.isfinite(array).all():
        raise LabelError(f"{where} {key!r}: expected one finite energy in eV, got {_shown(value)}")
    return float(array.reshape(()))


def read_forces(atoms: Atoms, keys: Keys, where: str) -> np.ndarray:
    """The frame's forces ``(N, 3)`` in eV/Å (finite)."""
    key, value = _lookup(atoms, keys, "forces", "arrays")
    if value is None:
        raise _missing(where, key, atoms, keys, "arrays")
    forces = _floats(value)
    if forces is None or forces.shape != (len(atoms), 3):
        shape = np.shape(value) if forces is not None else type(value).__name__
        raise LabelError(f"{where} {key!r}: expected forces of shape ({len(atoms)}, 3) in eV/Å, got {shape}")
    if not np.isfinite(forces).all():
        raise LabelError(f"{where} {key!r}: expected finite forces in eV/Å, got non-finite values")
    return forces


def has_stress(atoms: Atoms, keys: Keys) -> bool:
    """Whether the frame carries a stress label."""
    return _lookup(atoms, keys, "stress", "info")[1] is not None


def read_stress(atoms: Atoms, keys: Keys, where: str) -> np.ndarray:
    """The frame's stress ``(3, 3)`` in eV/Å³ from Voigt-6 (ASE's order), 9 values or 3x3; the frame must be
    periodic in 3D."""
    key, value = _lookup(atoms, keys, "stress", "info")
    if value is None:
        raise _missing(where, key, atoms, keys, "info")
    stress = _floats(value)
    if stress is None:
        raise LabelError(f"{where} {key!r}: expected numbers in eV/Å³, got {_shown(value)}")
    if stress.shape == (6,):
        stress = voigt_6_to_full_3x3_stress(stress)
    elif stress.shape == (9,):
        stress = stress.reshape(3, 3)
    if stress.shape != (3, 3):
        raise LabelError(
            f"{where} {key!r}: expected 6 (Voigt: xx yy zz yz xz xy), 9 or 3x3 values in eV/Å³, got shape "
            f"{np.shape(value)}"
        )
    if not np.isfinite(stress).all():
        raise LabelError(f"{where} {key!r}: expected finite values in eV/Å³, got {stress.tolist()}")
    if not atoms.pbc.all():
        raise LabelError(
            f"{where} {key!r}: expected a stress only on a frame periodic in 3D, got pbc {atoms.pbc.tolist()} "
            "(read with stress=False to leave stresses out)"
        )
    return stress
