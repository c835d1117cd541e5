"""Neighbour lists of molecules, slabs and crystals: one code path for every ``pbc``.

A graph is periodic along lattice vector ``k`` when ``pbc[k]`` is true; the rows of ``cell`` ``(3, 3)`` are the
lattice vectors in Å (ASE's convention). An edge ``(source, target)`` carries an integer lattice shift ``S``
``(3,)``, and its vector is ``pos[target] - pos[source] + S @ cell`` (ASE's and SevenNet's ``r_j - r_i``; the
existing molecular edges of :func:`~geoadapt.models.geometry.radius_edges` have the same orientation).

The pairs come from vesin rather than ASE's or matscipy's neighbour lists: it is a maintained C++ library built for
this job (its authors' benchmarks put it ahead of both in speed), it gives every periodic image in cells smaller
than the cutoff (a 1-atom fcc cell at 5 Å), handles mixed periodicity, and takes torch tensors. It sees detached
float64 copies of the positions on the CPU (one transfer per batch on a GPU); gradients (forces, and stress through
``cell``) flow through :func:`edge_vectors`, computed in torch from the shifts.
Non-periodic graphs (no ``cell``, or ``pbc`` all false) go through the same call and give exactly the edges of
``radius_edges``, in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from geoadapt.structure import GraphData, graph_index, num_graphs


@dataclass
class Neighbours:
    """Edges of a batch of graphs.

    Attributes:
        edge_index: ``(2, E)`` node ids ``[source, target]`` (sorted by target, then source, then shift).
        shifts: ``(E, 3)`` integer lattice shifts (float, the positions' dtype); zero on non-periodic graphs.
    """

    edge_index: Tensor
    shifts: Tensor


def periodic_system(data: GraphData, dtype: torch.dtype | None = None) -> tuple[Tensor | None, Tensor]:
    """``cell`` ``(B, 3, 3)`` (``None`` when the data has none) and ``pbc`` ``(B, 3)`` bool of ``data``.

    A graph without ``cell`` and ``pbc`` is a molecule (``pbc`` all false). ``ValueError`` when only one of the
    two is given and it leaves the system ambiguous: ``pbc`` true without a ``cell``, or a cell without ``pbc``.
    """
    n = num_graphs(data)
    cell, pbc = getattr(data, "cell", None), getattr(data, "pbc", None)
    device = graph_index(data).device
    if pbc is None:
        if cell is not None and bool(torch.as_tensor(cell).ne(0).any()):
            raise ValueError(
                "pbc: expected periodic flags (B, 3) bool alongside a cell (True: periodic along that lattice "
                "vector, False: a box around a molecule), got a cell without pbc"
            )
        return None, torch.zeros(n, 3, dtype=torch.bool, device=device)
    pbc = torch.as_tensor(pbc, dtype=torch.bool, device=device).reshape(-1, 3)
    if pbc.shape[0] != n:
        raise ValueError(f"pbc: expected shape ({n}, 3), one row per graph, got {tuple(pbc.shape)}")
    if cell is None:
        if bool(pbc.any()):
            first = int(pbc.any(dim=1).nonzero()[0])
            raise ValueError(
                f"cell: expected lattice vectors (B, 3, 3) in Å for pbc {pbc[first].tolist()} in graph "
                f"{first}, got no cell"
            )
        return None, pbc
    cell = torch.as_tensor(cell, device=device)
    cell = cell.to(dtype) if dtype is not None else cell
    if tuple(cell.shape) != (n, 3, 3):  # (1, 3, 3) per graph, so that PyG stacks one cell per graph
        raise ValueError(f"cell: expected shape ({n}, 3, 3), one per graph, got {tuple(cell.shape)}")
    return cell, pbc


def _search_box(cell: np.ndarray, pbc: np.ndarray, graph: int) -> np.ndarray:
    """The box vesin searches in: the periodic lattice vectors, completed by orthonormal vectors on the
    non-periodic axes (vesin divides by zero on a box whose periodic rows are degenerate, so that is checked
    here; the non-periodic rows never enter a shift, so their value does not change the edges)."""
    periodic = cell[pbc]
    if not pbc.any():
        return np.zeros((3, 3))
    singular = np.linalg.svd(periodic, compute_uv=False)
    if singular.min() <= 1e-8 * max(1.0, singular.max()):
        raise ValueError(
            f"cell: expected linearly independent lattice vectors along the periodic axes pbc {pbc.tolist()}, got "
            f"{cell.tolist()} in graph {graph}"
        )
    _, _, vh = np.linalg.svd(periodic)
    box = cell.copy()
    box[~pbc] = vh[len(periodic) :]
    return box


def neighbour_list(
    pos: Tensor, batch: Tensor, cutoff: float, cell: Tensor | None = None, pbc: Tensor | None = None
) -> Neighbours:
    """Every pair of atoms closer than ``cutoff`` Å, periodic images included.

    Args:
        pos: ``(N, 3)`` positions in Å.
        batch: ``(N,)`` graph id of each atom (sorted, as in a PyG batch).
        cutoff: radius in Å (pairs at exactly ``cutoff`` are left out, as in ``radius_edges``).
        cell: ``(B, 3, 3)`` lattice vectors (rows) in Å, or ``None`` for molecules.
        pbc: ``(B, 3)`` bool, or ``None`` for molecules.

    Returns:
        :class:`Neighbours` on ``pos``'s device. An atom is never its own neighbour at zero shift, but it is at
        a non-zero one (its periodic image) when the cell is smaller than the cutoff.
    """
    from vesin import NeighborList

    counts = torch.bincount(batch, minlength=int(pbc.shape[0]) if pbc is not None else 0).tolist()
    points = pos.detach().to("cpu", torch.float64).numpy()
    cells = cell.detach().to("cpu", torch.float64).numpy() if cell is not None else None
    flags = pbc.cpu().numpy() if pbc is not None else np.zeros((len(counts), 3), dtype=bool)
    search = NeighborList(cutoff=float(cutoff), full_list=True)
    edges, shifts, start = [], [], 0
    for graph, count in enumerate(counts):
        part = points[start : start + count]
        box = _search_box(cells[graph], flags[graph], graph) if cells is not None else np.zeros((3, 3))
        source, target, shift = search.compute(part, box, flags[graph], "ijS")
        source, target = source.astype(np.int64), target.astype(np.int64)
        order = np.lexsort((shift[:, 2], shift[:, 1], shift[:, 0], source, target))
        edges.append(np.stack([source[order], target[order]]) + start)
        shifts.append(shift[order])
        start += count
    edge_index = np.concatenate(edges, axis=1) if edges else np.zeros((2, 0), dtype=np.int64)
    shift = np.concatenate(shifts) if shifts else np.zeros((0, 3))
    return Neighbours(
        torch.from_numpy(edge_index).to(pos.device), torch.from_numpy(shift).to(device=pos.device, dtype=pos.dtype)
    )


def edge_vectors(pos: Tensor, neighbours: Neighbours, batch: Tensor, cell: Tensor | None = None) -> Tensor:
    """``pos[target] - pos[source] + shift @ cell`` ``(E, 3)``, differentiable in ``pos`` and ``cell``."""
    source, target = neighbours.edge_index
    vectors = pos[target] - pos[source]
    if cell is None or neighbours.shifts.numel() == 0 or not bool(neighbours.shifts.ne(0).any()):
        return vectors  # molecules: exactly the vectors of the molecular route
    offsets = torch.einsum("ek,ekl->el", neighbours.shifts.to(cell.dtype), cell[batch[source]])
    return vectors + offsets.to(vectors.dtype)


def graph_neighbours(data: GraphData, pos: Tensor, cutoff: float) -> tuple[Neighbours, Tensor, Tensor | None]:
    """The neighbours of ``data`` at ``cutoff`` with ``pos`` (its positions, cast as the caller needs), the
    graph id of each atom ``(N,)`` and the cell ``(B, 3, 3)`` in ``pos``'s dtype (``None`` for molecules)."""
    batch = graph_index(data).to(pos.device)
    cell, pbc = periodic_system(data, pos.dtype)
    if cell is not None:
        cell = cell.to(pos.device)
    return neighbour_list(pos, batch, cutoff, cell, pbc), batch, cell
