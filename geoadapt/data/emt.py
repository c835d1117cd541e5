"""Periodic fcc metals and alloys labelled with ASE's EMT potential: a level of theory that ships with ASE.

EMT (effective medium theory, Jacobsen, Stoltze and Nørskov 1996) covers Al, Cu, Ni, Pd, Ag, Pt and Au. Its
energies, forces and stresses are not PBE's, so a potential pretrained on PBE data (SevenNet-0 on MPtrj) has
something to adapt to, and everything runs offline in seconds.

:func:`emt_structures` builds rattled, strained structures of four kinds: ``bulk`` (the 4-atom cubic cell or a
2x1x1 supercell), ``alloy`` (a 2x1x1 supercell of two elements at random sites), ``vacancy`` (a 2x1x1 supercell
with one atom removed) and ``surface`` (an fcc(111) or fcc(100) slab with 10 Å of vacuum, periodic in all three
directions, so that its stress is defined). Each is labelled the way fine-tuning codes expect
(``REF_energy``, ``REF_forces``, ``REF_stress``; :func:`label`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from ase import Atoms
from ase.build import bulk, fcc100, fcc111
from ase.calculators.emt import EMT

EMT_METALS = ("Al", "Cu", "Ni", "Pd", "Ag", "Pt", "Au")
# Room-temperature fcc lattice constants (Å); EMT's own minima lie within a few percent of them.
LATTICE_CONSTANTS = {"Al": 4.05, "Cu": 3.61, "Ni": 3.52, "Pd": 3.89, "Ag": 4.09, "Pt": 3.92, "Au": 4.08}
KINDS = ("bulk", "alloy", "vacancy", "surface")


def label(atoms: Atoms, prefix: str = "REF_") -> Atoms:
    """``atoms`` with EMT's energy (eV), forces (eV/Å) and, when periodic in 3D, stress (eV/Å³, Voigt-6) stored
    under ``prefix`` keys (``REF_energy`` in ``info``, ``REF_forces`` in ``arrays``); no calculator left attached."""
    atoms.calc = EMT()
    atoms.info[f"{prefix}energy"] = float(atoms.get_potential_energy())
    atoms.arrays[f"{prefix}forces"] = atoms.get_forces()
    if atoms.pbc.all():
        atoms.info[f"{prefix}stress"] = atoms.get_stress()
    atoms.calc = None
    return atoms


def isolated_atoms(elements: Sequence[str] = EMT_METALS) -> list[Atoms]:
    """One atom of each element alone, with EMT's energy, marked ``config_type=IsolatedAtom`` (an E0 frame)."""
    frames = []
    for symbol in elements:
        atoms = label(Atoms(symbol, positions=[[0.0, 0.0, 0.0]]))
        atoms.info["config_type"] = "IsolatedAtom"
        frames.append(atoms)
    return frames


def _check(elements: Sequence[str], kinds: Sequence[str]) -> None:
    unknown = sorted(set(elements) - set(EMT_METALS))
    if unknown or not elements:
        raise ValueError(f"elements: expected some of EMT's fcc metals {list(EMT_METALS)}, got {list(elements)}")
    if not kinds or set(kinds) - set(KINDS):
        raise ValueError(f"kinds: expected some of {list(KINDS)}, got {list(kinds)}")


def _structure(kind: str, elements: Sequence[str], rng: np.random.Generator) -> Atoms:
    """One unrattled, unstrained structure of ``kind``."""
    symbol = str(rng.choice(elements))
    a = LATTICE_CONSTANTS[symbol]
    if kind == "bulk":
        return bulk(symbol, "fcc", a=a, cubic=True).repeat((1 + int(rng.integers(2)), 1, 1))
    if kind == "vacancy":
        atoms = bulk(symbol, "fcc", a=a, cubic=True).repeat((2, 1, 1))
        del atoms[int(rng.integers(len(atoms)))]
        return atoms
    if kind == "alloy":
        pair = [str(s) for s in rng.choice(elements, size=2, replace=len(elements) < 2)]
        atoms = bulk(pair[0], "fcc", a=float(np.mean([LATTICE_CONSTANTS[s] for s in pair])), cubic=True)
        atoms = atoms.repeat((2, 1, 1))
        sites = rng.permutation(len(atoms))[: 1 + int(rng.integers(len(atoms) - 1))]
        symbols = np.array(atoms.get_chemical_symbols())
        symbols[sites] = pair[1]
        atoms.set_chemical_symbols(symbols.tolist())
        return atoms
    build = fcc111 if rng.random() < 0.5 else fcc100
    atoms = build(symbol, size=(1, 1, 4), a=a, vacuum=5.0)
    atoms.pbc = True  # a slab in a periodic box with a vacuum layer: 3D-periodic, so stress is defined
    return atoms


def emt_structures(
    count: int,
    seed: int = 0,
    elements: Sequence[str] = EMT_METALS,
    kinds: Sequence[str] = KINDS,
    rattle: float = 0.05,
    strain: float = 0.02,
) -> list[Atoms]:
    """``count`` EMT-labelled periodic structures (see the module docstring), the kinds in turn, seeded.

    Args:
        elements: fcc metals to draw from (symbols among :data:`EMT_METALS`).
        kinds: structure kinds among :data:`KINDS`, used in turn.
        rattle: standard deviation (Å) of the Gaussian noise on every coordinate.
        strain: each entry of the symmetric strain applied to the cell (and atoms) is uniform in ``[-strain, strain]``.
    """
    if count < 1:
        raise ValueError(f"count: expected a whole number >= 1, got {count}")
    _check(elements, kinds)
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        atoms = _structure(kinds[i % len(kinds)], elements, rng)
        eps = rng.uniform(-strain, strain, size=(3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + (eps + eps.T) / 2), scale_atoms=True)
        atoms.positions = atoms.positions + rng.normal(0.0, rattle, size=atoms.positions.shape)
        atoms.info["config_type"] = kinds[i % len(kinds)]
        frames.append(label(atoms))
    return frames
