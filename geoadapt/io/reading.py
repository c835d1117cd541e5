"""ASE in: any file ``ase.io.read`` reads (extxyz first) or a list of ``Atoms`` -> PyG graphs for potentials.

Every graph holds ``z`` ``(N,)``, ``pos`` ``(N, 3)`` Å, ``cell`` ``(1, 3, 3)`` Å (lattice vectors as rows; zeros
for a molecule without one), ``pbc`` ``(1, 3)`` bool, ``energy`` ``(1, 1)`` eV, ``force`` ``(N, 3)`` eV/Å,
``y`` = ``energy`` (the names :mod:`geoadapt.data.potentials` and the potential task use) and, when the frames
carry stresses, ``stress`` ``(1, 3, 3)`` eV/Å³. Frames marked ``config_type=IsolatedAtom`` give the per-element
reference energies (``e0s``) and are not graphs.

Every frame is checked before anything is returned: a missing or malformed label, an element the model does not
know, an empty or missing file raise one line naming the file, the frame and the key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from ase import Atoms
from torch_geometric.data import Data

from geoadapt.data.potentials import POTENTIAL_SPEC, POTENTIAL_STRESS_SPEC, PotentialDataset
from geoadapt.io.labels import (
    Keys,
    LabelError,
    as_keys,
    has_stress,
    is_isolated_atom,
    read_energy,
    read_forces,
    read_stress,
)
from geoadapt.models.potential import check_known_elements

log = logging.getLogger("geoadapt")


def atoms_to_data(atoms: Atoms, dtype: torch.dtype = torch.float32) -> Data:
    """Unlabelled graph of ``atoms``: ``z`` ``(N,)``, ``pos`` ``(N, 3)`` Å, ``cell`` ``(1, 3, 3)`` Å, ``pbc`` (1, 3)."""
    return Data(
        z=torch.as_tensor(np.asarray(atoms.numbers), dtype=torch.long),
        pos=torch.as_tensor(np.asarray(atoms.positions), dtype=dtype),
        cell=torch.as_tensor(np.asarray(atoms.cell.array), dtype=dtype).reshape(1, 3, 3),
        pbc=torch.as_tensor(np.asarray(atoms.pbc), dtype=torch.bool).reshape(1, 3),
    )


def _known_elements(elements: Iterable[int] | object | None) -> set[int] | None:
    """The atomic numbers allowed: from a list, or from a model's ``elements`` attribute."""
    if elements is None:
        return None
    values = getattr(elements, "elements", elements)
    return {int(z) for z in values}  # type: ignore[union-attr]


def _check_frame(atoms: object, where: str, known: set[int] | None) -> Atoms:
    if not isinstance(atoms, Atoms):
        raise TypeError(f"{where}: expected an ase.Atoms, got {type(atoms).__name__}")
    if len(atoms) == 0:
        raise LabelError(f"{where} 'numbers': expected at least one atom, got none")
    if not np.isfinite(atoms.positions).all() or not np.isfinite(atoms.cell.array).all():
        raise LabelError(f"{where} 'positions': expected finite positions and cell in Å, got non-finite values")
    if known is not None:
        check_known_elements(known, atoms.numbers, f"{where} 'numbers'", error=LabelError)
    return atoms


def _stress_wanted(frames: Sequence[Atoms], training: list[int], keys: Keys, stress: bool | None, source: str) -> bool:
    """Whether stresses are read: asked for, or (``None``) present on every training frame."""
    if stress is not None:
        return bool(stress)
    flags = [has_stress(frames[i], keys) for i in training]
    if any(flags) and not all(flags):
        first = training[flags.index(False)]
        key = "stress" if keys.calculator else keys.stress
        raise LabelError(
            f"{source} frame {first} {key!r}: missing while frame {training[flags.index(True)]} has one; "
            "pass stress=False to leave stresses out"
        )
    return bool(flags) and all(flags)


def _isolated_atom(atoms: Atoms, keys: Keys, where: str, e0s: dict[int, float]) -> None:
    if len(atoms) != 1:
        raise LabelError(f"{where} {keys.config_type!r}: expected one atom in an IsolatedAtom frame, got {len(atoms)}")
    z, energy = int(atoms.numbers[0]), read_energy(atoms, keys, where)
    if z in e0s and e0s[z] != energy:
        raise LabelError(f"{where} {keys.config_type!r}: expected one E0 of element {z}, got {e0s[z]} and {energy}")
    e0s[z] = energy


def _graph(atoms: Atoms, energy: float, forces: np.ndarray, stress: np.ndarray | None, dtype: torch.dtype) -> Data:
    graph = atoms_to_data(atoms, dtype)
    graph.energy = torch.tensor([[energy]], dtype=dtype)
    graph.y = graph.energy
    graph.force = torch.as_tensor(forces, dtype=dtype)
    if stress is not None:
        graph.stress = torch.as_tensor(stress, dtype=dtype).reshape(1, 3, 3)
    return graph


def from_atoms(
    frames: Iterable[Atoms],
    keys: Keys | dict | str | None = None,
    stress: bool | None = None,
    elements: Iterable[int] | object | None = None,
    dtype: torch.dtype = torch.float32,
    source: str = "atoms",
) -> PotentialDataset:
    """Labelled graphs of ASE ``frames`` (see the module docstring), as a :class:`PotentialDataset`.

    Args:
        keys: where the labels are (:class:`~geoadapt.io.labels.Keys`, a dict of its fields, or ``"calculator"``
            for the frames' calculator results); default ``REF_energy`` / ``REF_forces`` / ``REF_stress``.
        stress: read stresses (``True``), leave them out (``False``), or (``None``) read them when every frame
            that is not an isolated atom has one.
        elements: atomic numbers a model knows, or the model itself (its ``elements``); others are refused.
        dtype: floating dtype of positions, cells and labels.
        source: the name used in messages and as the dataset's name.
    """
    keys = as_keys(keys)
    frames = list(frames)
    if not frames:
        raise LabelError(f"{source}: expected at least one frame, got none")
    known = _known_elements(elements)
    for i, atoms in enumerate(frames):
        _check_frame(atoms, f"{source} frame {i}", known)
    training = [i for i, atoms in enumerate(frames) if not is_isolated_atom(atoms, keys)]
    with_stress = _stress_wanted(frames, training, keys, stress, source)
    e0s: dict[int, float] = {}
    graphs = []
    for i, atoms in enumerate(frames):
        where = f"{source} frame {i}"
        if is_isolated_atom(atoms, keys):
            _isolated_atom(atoms, keys, where, e0s)
            continue
        energy, forces = read_energy(atoms, keys, where), read_forces(atoms, keys, where)
        graphs.append(_graph(atoms, energy, forces, read_stress(atoms, keys, where) if with_stress else None, dtype))
    if keys.calculator:
        log.info("%s: labels read from the frames' calculator results (keys='calculator'), not REF_* keys", source)
    spec = POTENTIAL_STRESS_SPEC if with_stress else POTENTIAL_SPEC
    return PotentialDataset(Path(source).stem or source, graphs, [], spec, dict(sorted(e0s.items())))


def _read_frames(path: Path, index: str | int | slice, format: str | None) -> list[Atoms]:
    import ase.io

    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise LabelError(f"{path}: expected at least one frame, got an empty file")
    try:
        frames = ase.io.read(path, index=index, format=format)
    except Exception as err:  # ASE raises many kinds (XYZError, UnknownFileTypeError, ValueError, ...)
        reason = " ".join(str(err).split())
        raise LabelError(f"{path}: ASE could not read it ({type(err).__name__}: {reason})") from err
    return [frames] if isinstance(frames, Atoms) else list(frames)


def read(
    path: str | os.PathLike,
    index: str | int | slice = ":",
    keys: Keys | dict | str | None = None,
    stress: bool | None = None,
    elements: Iterable[int] | object | None = None,
    dtype: torch.dtype = torch.float32,
    format: str | None = None,
) -> PotentialDataset:
    """The frames of ``path`` (any format ``ase.io.read`` reads; ``index`` picks frames, all by default) as
    labelled graphs; see :func:`from_atoms` for ``keys``, ``stress``, ``elements`` and ``dtype``.

    ``FileNotFoundError`` for a missing file; ``ValueError`` (one line: file, frame, key) for anything else.
    """
    path = Path(path)
    return from_atoms(_read_frames(path, index, format), keys, stress, elements, dtype, source=str(path))
