"""Labelled frames made with ASE's EMT calculator (energies, forces and stresses of Cu, Au and their alloys)."""

from __future__ import annotations

from ase import Atoms
from ase.build import bulk, fcc111
from ase.calculators.emt import EMT


def label(atoms: Atoms, prefix: str = "REF_") -> Atoms:
    """``atoms`` with EMT's energy, forces and (periodic in 3D) stress stored under ``prefix`` keys, no calculator."""
    atoms.calc = EMT()
    atoms.info[f"{prefix}energy"] = atoms.get_potential_energy()
    atoms.arrays[f"{prefix}forces"] = atoms.get_forces()
    if atoms.pbc.all():
        atoms.info[f"{prefix}stress"] = atoms.get_stress()  # Voigt-6, ASE's order
    atoms.calc = None
    return atoms


def crystals() -> list[Atoms]:
    """Three rattled fcc cells: Cu, Au and CuAu (4 atoms each), and a 1-atom primitive Cu cell."""
    frames = []
    for i, (symbol, a, gold) in enumerate([("Cu", 3.61, []), ("Au", 4.08, []), ("Cu", 3.85, [1, 2])]):
        atoms = bulk(symbol, "fcc", a=a, cubic=True)
        atoms.numbers[gold] = 79
        atoms.rattle(0.05, seed=i)
        frames.append(atoms)
    frames.append(bulk("Cu", "fcc", a=3.58))
    return [label(a) for a in frames]


def isolated_atoms() -> list[Atoms]:
    """One Cu and one Au atom alone, marked ``config_type=IsolatedAtom``."""
    frames = []
    for symbol in ("Cu", "Au"):
        atoms = label(Atoms(symbol, positions=[[0.0, 0.0, 0.0]]))
        atoms.info["config_type"] = "IsolatedAtom"
        frames.append(atoms)
    return frames


def slab() -> Atoms:
    """A Cu(111) slab, periodic in x and y only (no stress)."""
    atoms = fcc111("Cu", (2, 2, 3), vacuum=5.0)
    atoms.rattle(0.03, seed=7)
    return label(atoms)
