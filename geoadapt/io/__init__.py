"""ASE in: extxyz (or any ``ase.io`` format) and ``Atoms`` to PyG graphs.

``read(path)`` / ``from_atoms(frames)`` give a :class:`~geoadapt.data.potentials.PotentialDataset` of labelled
graphs (energies, forces, stresses, cells, periodic flags) and the isolated-atom energies (``e0s``).
See ``docs/potentials.md``.
"""

from geoadapt.io.labels import Keys
from geoadapt.io.reading import atoms_to_data, from_atoms, read

__all__ = ["Keys", "atoms_to_data", "from_atoms", "read"]
