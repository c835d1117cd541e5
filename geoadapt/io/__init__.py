"""ASE in and out: extxyz (or any ``ase.io`` format) and ``Atoms`` to PyG graphs, and an ASE calculator.

``read(path)`` / ``from_atoms(frames)`` give a :class:`~geoadapt.data.potentials.PotentialDataset` of labelled
graphs (energies, forces, stresses, cells, periodic flags) and the isolated-atom energies (``e0s``);
``Calculator(model)`` runs any geoadapt energy model under ASE. See ``docs/potentials.md``.
"""

from geoadapt.io.calculator import Calculator
from geoadapt.io.labels import Keys
from geoadapt.io.reading import atoms_to_data, from_atoms, read

__all__ = ["Calculator", "Keys", "atoms_to_data", "from_atoms", "read"]
