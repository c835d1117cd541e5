"""Unlabelled crystals like a foundation potential's pretraining data, built with ASE: no pretraining data needed.

SevenNet-0 and other universal potentials learned from Materials Project relaxations (MPtrj): bulk crystals across
the periodic table, near equilibrium. :func:`source_like_structures` builds small rattled and strained cells of
common prototypes of that kind (bcc and hcp metals, rock-salt, diamond, zinc-blende, wurtzite, fluorite, rutile,
perovskite; oxides, halides, semiconductors), leaving out every prototype that holds an element of the target
(``exclude``), so that they measure what adaptation does to the rest of what the model knows. Labelled by the frozen
source model (:func:`geoadapt.train.replay.pseudolabel`), they serve both to measure forgetting
(:mod:`geoadapt.tasks.forgetting`) and to prevent it (replay, :class:`geoadapt.train.replay.ReplayLoader`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, chemical_symbols
from ase.spacegroup import crystal

MIN_ATOMS = 4


@dataclass(frozen=True)
class Prototype:
    """A crystal prototype: its name, kind (structure type) and a builder of its (small) cell."""

    name: str
    kind: str
    build: Callable[[], Atoms]

    @property
    def elements(self) -> set[int]:
        """Atomic numbers of the prototype."""
        return {int(z) for z in self.build().numbers}


def _bulk(formula: str, structure: str, **cell: float) -> Callable[[], Atoms]:
    return lambda: bulk(formula, structure, **cell)


def _rutile(a: float, c: float, u: float) -> Callable[[], Atoms]:
    return lambda: crystal(["Ti", "O"], [(0, 0, 0), (u, u, 0)], spacegroup=136, cellpar=[a, a, c, 90, 90, 90])


def _perovskite(a: float) -> Callable[[], Atoms]:
    basis = [(0, 0, 0), (0.5, 0.5, 0.5), (0.5, 0.5, 0)]
    return lambda: crystal(["Sr", "Ti", "O"], basis, spacegroup=221, cellpar=[a, a, a, 90, 90, 90])


# Experimental lattice constants (Å). Cells are made at least MIN_ATOMS atoms (see _small_cell).
PROTOTYPES: tuple[Prototype, ...] = (
    *(Prototype(f"{s} bcc", "bcc", _bulk(s, "bcc", a=a, cubic=True)) for s, a in
      [("Fe", 2.87), ("W", 3.16), ("Mo", 3.15), ("V", 3.03), ("Cr", 2.91), ("Nb", 3.30), ("Ta", 3.31), ("Na", 4.23)]),
    *(Prototype(f"{s} hcp", "hcp", _bulk(s, "hcp", a=a, c=c)) for s, a, c in
      [("Mg", 3.21, 5.21), ("Ti", 2.95, 4.68), ("Zr", 3.23, 5.15), ("Zn", 2.66, 4.95), ("Co", 2.51, 4.07)]),
    *(Prototype(f"{f} rock-salt", "rocksalt", _bulk(f, "rocksalt", a=a)) for f, a in
      [("NaCl", 5.64), ("MgO", 4.21), ("LiF", 4.03), ("KCl", 6.29), ("CaO", 4.81)]),
    *(Prototype(f"{f} diamond", "diamond", _bulk(f, "diamond", a=a)) for f, a in [("Si", 5.43), ("Ge", 5.66)]),
    *(Prototype(f"{f} zinc-blende", "zincblende", _bulk(f, "zincblende", a=a)) for f, a in
      [("GaAs", 5.65), ("ZnS", 5.41)]),
    *(Prototype(f"{f} wurtzite", "wurtzite", _bulk(f, "wurtzite", a=a, c=c)) for f, a, c in
      [("ZnO", 3.25, 5.21), ("GaN", 3.19, 5.19)]),
    Prototype("CaF2 fluorite", "fluorite", _bulk("CaF2", "fluorite", a=5.46)),
    Prototype("TiO2 rutile", "rutile", _rutile(4.59, 2.96, 0.305)),
    Prototype("SrTiO3 perovskite", "perovskite", _perovskite(3.905)),
)  # fmt: skip


def _small_cell(atoms: Atoms) -> Atoms:
    """``atoms`` repeated along its first lattice vector until it holds at least :data:`MIN_ATOMS` atoms: in a cell of
    one or two atoms the forces are zero or fixed by symmetry, so they would say little about a model."""
    repeats = 1
    while len(atoms) * repeats < MIN_ATOMS:
        repeats += 1
    return atoms.repeat((repeats, 1, 1))


def _atomic_numbers(elements: Iterable[int | str]) -> set[int]:
    out = set()
    for e in elements:
        if isinstance(e, str):
            if e not in atomic_numbers:
                raise ValueError(f"exclude: expected element symbols or atomic numbers, got {e!r}")
            out.add(atomic_numbers[e])
        else:
            out.add(int(e))
    return out


def prototypes(exclude: Iterable[int | str] = ()) -> list[Prototype]:
    """The prototypes with none of the ``exclude`` elements (symbols or atomic numbers)."""
    excluded = _atomic_numbers(exclude)
    kept = [p for p in PROTOTYPES if not p.elements & excluded]
    if not kept:
        shown = sorted(chemical_symbols[z] for z in excluded)
        raise ValueError(f"exclude: expected some prototype left without elements {shown}, got every one excluded")
    return kept


def source_like_structures(
    count: int, exclude: Iterable[int | str] = (), seed: int = 0, rattle: float = 0.05, strain: float = 0.02
) -> list[Atoms]:
    """``count`` rattled, strained crystals of the prototypes without the ``exclude`` elements, seeded.

    The prototypes come in a shuffled order, every one before any repeats, so the structure types stay balanced.
    ``rattle``: standard deviation (Å) of the noise on each coordinate; ``strain``: bound of each entry of the
    symmetric strain of the cell. Each frame's ``info["config_type"]`` names its prototype. No labels.
    """
    if count < 1:
        raise ValueError(f"count: expected a whole number >= 1, got {count}")
    kept = prototypes(exclude)
    rng = np.random.default_rng(seed)
    order: list[int] = []
    while len(order) < count:
        order.extend(rng.permutation(len(kept)).tolist())
    frames = []
    for index in order[:count]:
        atoms = _small_cell(kept[index].build())
        eps = rng.uniform(-strain, strain, size=(3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + (eps + eps.T) / 2), scale_atoms=True)
        atoms.positions = atoms.positions + rng.normal(0.0, rattle, size=atoms.positions.shape)
        atoms.pbc = True
        atoms.info["config_type"] = kept[index].name
        frames.append(atoms)
    return frames
