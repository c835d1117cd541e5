"""Periodic neighbour lists (vesin) against ASE's own neighbour list, and molecules against the molecular edges."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111
from ase.neighborlist import neighbor_list
from torch_geometric.data import Batch, Data

from geoadapt.io import atoms_to_data
from geoadapt.models.geometry import radius_edges
from geoadapt.models.neighbours import edge_vectors, graph_neighbours, neighbour_list


def rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def structures() -> dict[str, Atoms]:
    rattled = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    rattled.rattle(0.1, seed=0)
    rattled.positions += [5.0, -7.0, 2.0]  # atoms outside the cell: images must still be found
    triclinic = bulk("Cu", "fcc", a=3.6)
    triclinic.set_cell(triclinic.cell.array @ np.array([[1, 0.1, 0], [0, 1, 0.2], [0.05, 0, 1]]), scale_atoms=True)
    slab = fcc111("Cu", (2, 2, 3), vacuum=6.0)
    turned = slab.copy()
    R = rotation(1)
    turned.set_cell(slab.cell.array @ R.T)
    turned.positions = slab.positions @ R.T  # the non-periodic axis no longer along z
    wire = slab.copy()
    wire.pbc = [True, False, False]
    return {
        "primitive fcc (1 atom, cell < cutoff)": bulk("Cu", "fcc", a=3.6),
        "cubic fcc": bulk("Cu", "fcc", a=3.6, cubic=True),
        "rattled supercell": rattled,
        "triclinic": triclinic,
        "slab": slab,
        "rotated slab": turned,
        "wire": wire,
    }


@pytest.mark.parametrize("name", list(structures()))
def test_edges_and_vectors_equal_ase(name):
    atoms = structures()[name]
    data = atoms_to_data(atoms, torch.float64)
    neighbours, batch, cell = graph_neighbours(data, data.pos, 5.0)
    vectors = edge_vectors(data.pos, neighbours, batch, cell)
    i, j, D = neighbor_list("ijD", atoms, 5.0)
    ours = sorted(zip(*neighbours.edge_index.tolist(), np.round(vectors.numpy(), 8).tolist()))
    theirs = sorted(zip(i.tolist(), j.tolist(), np.round(D, 8).tolist()))
    assert len(ours) == len(theirs) > 0 and ours == theirs


def test_molecules_keep_exactly_the_molecular_edges(molecules):
    # Same pairs in the same order as radius_edges, and zero shifts: molecular energies do not move.
    neighbours = neighbour_list(molecules.pos, molecules.batch, 2.5)
    assert torch.equal(neighbours.edge_index, radius_edges(molecules.pos, molecules.batch, 2.5))
    assert neighbours.shifts.shape == (neighbours.edge_index.shape[1], 3) and not neighbours.shifts.any()
    vectors = edge_vectors(molecules.pos, neighbours, molecules.batch)
    source, target = neighbours.edge_index
    assert torch.equal(vectors, molecules.pos[target] - molecules.pos[source])


def test_a_batch_is_its_graphs_side_by_side():
    crystal = atoms_to_data(bulk("Cu", "fcc", a=3.6))
    box = atoms_to_data(Atoms("Cu3", positions=[[0, 0, 0], [2.4, 0, 0], [0, 2.4, 0]], cell=[8, 8, 8]))
    slab = atoms_to_data(fcc111("Cu", (1, 1, 3), vacuum=5.0))
    graphs = [crystal, box, slab]
    batch = Batch.from_data_list(graphs)
    joint, _, _ = graph_neighbours(batch, batch.pos, 5.0)
    parts, offset = [], 0
    for g in graphs:
        alone, _, _ = graph_neighbours(g, g.pos, 5.0)
        parts.append((alone.edge_index + offset, alone.shifts))
        offset += g.num_nodes
    assert torch.equal(joint.edge_index, torch.cat([p[0] for p in parts], dim=1))
    assert torch.equal(joint.shifts, torch.cat([p[1] for p in parts]))


def test_ambiguous_or_degenerate_cells_are_refused_in_one_line():
    pos = torch.zeros(2, 3)
    pos[1, 0] = 1.5
    with pytest.raises(ValueError, match=r"pbc: expected periodic flags .* got a cell without pbc"):
        graph_neighbours(Data(pos=pos, cell=torch.eye(3)[None] * 4), pos, 5.0)
    with pytest.raises(ValueError, match=r"cell: expected lattice vectors .* pbc \[True, True, True\] in graph 0"):
        graph_neighbours(Data(pos=pos, pbc=torch.ones(1, 3, dtype=torch.bool)), pos, 5.0)
    flat = torch.tensor([[[4.0, 0, 0], [4.0, 0, 0], [0, 0, 4.0]]])  # two equal lattice vectors
    with pytest.raises(ValueError, match=r"cell: expected linearly independent lattice vectors .* in graph 0"):
        graph_neighbours(Data(pos=pos, cell=flat, pbc=torch.ones(1, 3, dtype=torch.bool)), pos, 5.0)
    with pytest.raises(ValueError, match=r"cell: expected shape \(1, 3, 3\), one per graph, got \(3, 3\)"):
        graph_neighbours(Data(pos=pos, cell=flat[0], pbc=torch.ones(1, 3, dtype=torch.bool)), pos, 5.0)
    with pytest.raises(ValueError, match=r"pbc: expected shape \(1, 3\)"):
        graph_neighbours(Data(pos=pos, cell=flat, pbc=torch.ones(2, 3, dtype=torch.bool)), pos, 5.0)
