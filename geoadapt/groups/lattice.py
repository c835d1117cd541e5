"""Periodic systems and Cartesian 3x3 fields under rotations and reflections.

A periodic graph carries ``cell`` ``(B, 3, 3)`` whose rows are its lattice vectors (ASE's convention), so a matrix
``R`` maps ``cell -> cell @ R.T`` (each row ``a -> R a``: three ``1o`` vectors, ``3x1o``). Translations leave it as
it is (lattice vectors are differences of positions) and so do node permutations (one cell per graph). The
rotations of :mod:`geoadapt.groups.euclidean` and the planar groups turn a graph's ``cell`` whether or not the Spec
names it: a crystal whose atoms turned without its lattice would be another crystal.

A field whose rows are 3x3 matrices is a Cartesian tensor, and its irreps in the Spec say which kind:

- ``"3x1o"``: three vectors stored as rows (a cell): ``M -> M @ R.T``;
- ``"0e+2e"``: a symmetric rank-2 tensor (stress ``(B, 3, 3)`` in eV/Å³): ``S -> R S R.T``;
- ``"0e+1e+2e"``: any rank-2 tensor: ``S -> R S R.T``.

``R S R.T`` is ``D(R)`` of those irreps in e3nn's basis (``e3nn.io.CartesianTensor``), reflections included
(every part is even); the tests check it against e3nn.
"""

from __future__ import annotations

from e3nn import o3
from torch import Tensor

CELL = "cell"
ROWS = o3.Irreps("3x1o")
RANK_TWO = (o3.Irreps("0e+2e"), o3.Irreps("0e+1e+2e"))


def is_matrix_field(value: Tensor) -> bool:
    """True for a field stored as 3x3 matrices, ``(rows, 3, 3)``."""
    return value.dim() == 3 and tuple(value.shape[1:]) == (3, 3)


def check_matrix_field(key: str, value: Tensor, irreps: o3.Irreps) -> None:
    """``ValueError`` unless ``value`` is ``(rows, 3, 3)`` with irreps ``3x1o``, ``0e+2e`` or ``0e+1e+2e``."""
    if not is_matrix_field(value):
        raise ValueError(f"field {key!r}: expected Cartesian matrices (rows, 3, 3), got {tuple(value.shape)}")
    if irreps != ROWS and irreps not in RANK_TWO:
        raise ValueError(
            f"field {key!r}: expected irreps 3x1o (vectors as rows, a cell), 1x0e+1x2e (symmetric rank-2, stress) "
            f"or 1x0e+1x1e+1x2e (rank-2) for rows of 3x3 matrices, got {irreps}"
        )


def rotate_matrices(value: Tensor, irreps: o3.Irreps, R: Tensor, row: Tensor | None) -> Tensor:
    """``value`` ``(rows, 3, 3)`` turned by ``R`` ``(n, 3, 3)``: ``M R^T`` for ``3x1o`` rows, else ``R M R^T``.

    ``row`` ``(rows,)`` picks the element of each row (``None``: the one element ``R[0]`` for all).
    """
    matrix = R.to(value.device, value.dtype)
    matrix = matrix[row] if row is not None else matrix[:1].expand(value.shape[0], 3, 3)
    turned = value @ matrix.transpose(-1, -2)
    return turned if irreps == ROWS else matrix @ turned


def check_cell(value: Tensor, n_graphs: int) -> None:
    """``ValueError`` unless ``cell`` is ``(n_graphs, 3, 3)``."""
    if tuple(value.shape) != (n_graphs, 3, 3):
        raise ValueError(
            f"field 'cell': expected lattice vectors (graphs, 3, 3) = ({n_graphs}, 3, 3), got {tuple(value.shape)}"
        )
