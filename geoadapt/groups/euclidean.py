"""E(3) and its subgroups: ``SO3``, ``O3``, ``Translation``, ``E3`` (rotation/reflection + translation) and
``SE3`` (rotation + translation).

Elements: a rotation-type element is an ``(n, 3, 3)`` matrix, a translation an ``(n, 3)`` vector,
an E(3) element the pair ``(R, t)`` acting as ``x -> R x + t`` on positions.
Every group here acts on data through :func:`act_matrix`, which planar groups reuse.
"""

from __future__ import annotations

import copy

import torch
from e3nn import o3
from torch import Tensor

from geoadapt.dtypes import default_dtype
from geoadapt.groups.base import Group, on_device_of
from geoadapt.groups.irreps import haar_rotation, irrep_matrices, is_invariant, rotate_irreps
from geoadapt.groups.lattice import CELL, ROWS, check_cell, check_matrix_field, is_matrix_field, rotate_matrices
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, field_level, is_graph, is_image, num_graphs, row_graph


def _rows(n: int, count: int, what: str) -> bool:
    """Whether elements are per row (``True``) or one shared element (``False``)."""
    if n == 1:
        return False
    if n != count:
        raise ValueError(f"{what}: expected 1 group element or one per graph ({count}), got {n}")
    return True


def act_matrix(data: AnyData, spec: Spec, R: Tensor | None, t: Tensor | None, group: str) -> AnyData:
    """Apply ``x -> R x + t`` to positions and ``D(R)`` to every irreps field named in ``spec``.

    A graph's ``cell`` (lattice vectors as rows) turns with ``R`` whether or not ``spec`` names it, and fields of
    3x3 matrices turn as Cartesian tensors (``R S R^T``; see :mod:`geoadapt.groups.lattice`).

    ``R`` is ``(n, 3, 3)`` or ``None`` (identity); ``t`` is ``(n, 3)`` or ``None``; ``n`` is 1 or the
    number of graphs / samples. Works on PyG graphs and on point clouds ``(B, N, 3)``.
    """
    if is_image(data):
        raise TypeError(f"{group} acts on graphs and point clouds; images need Cyclic, Dihedral or SO2")
    n = (R if R is not None else t).shape[0]
    if not is_graph(data):
        if data.shape[-1] != 3:
            raise ValueError(f"point cloud: expected shape (B, N, 3), got {tuple(data.shape)}")
        per_sample = _rows(n, data.shape[0], "point cloud")
        out = data
        if R is not None:
            Rb = R.to(data.device, data.dtype)
            Rb = Rb if per_sample else Rb.expand(data.shape[0], 3, 3)
            out = torch.einsum("bij,bnj->bni", Rb, out)
        if t is not None:
            out = out + t.to(data.device, data.dtype)[:, None, :]
        return out
    per_graph = _rows(n, num_graphs(data), "graph batch")
    out = copy.copy(data)
    rotated = [irreps for key, irreps in spec.fields.items() if not is_invariant(irreps)]
    matrices = irrep_matrices(sum(rotated, o3.Irreps()), R) if R is not None and rotated else None
    for key, irreps in spec.fields.items():
        if key not in data:
            raise ValueError(f"field {key!r}: named in the Spec but missing from the data (has {sorted(data.keys())})")
        value = data[key]
        matrix_field = isinstance(value, Tensor) and is_matrix_field(value)
        if matrix_field:
            check_matrix_field(key, value, irreps)
        else:
            spec.check_tensor(key, value)
        moves = (R is not None and not is_invariant(irreps)) or (t is not None and key in spec.positions)
        if not moves:
            continue  # invariant field: shared with the input, never copied
        row = row_graph(data, field_level(data, key, spec)) if per_graph else None
        if R is not None and matrix_field:
            value = rotate_matrices(value, irreps, R, row)
        elif R is not None:
            value = rotate_irreps(value, irreps, R, row, matrices)
        if t is not None and key in spec.positions:
            shift = t.to(value.device, value.dtype)
            value = value + (shift[row] if row is not None else shift)
        out[key] = value
    if R is not None and CELL in data and CELL not in spec.fields:
        # A periodic system turns with its lattice (see geoadapt.groups.lattice), named in the Spec or not.
        check_cell(data[CELL], num_graphs(data))
        row = row_graph(data, "graph") if per_graph else None
        out[CELL] = rotate_matrices(data[CELL], ROWS, R, row)
    return out


def act_output_matrix(y: Tensor, spec: Spec, R: Tensor, batch: Tensor | None) -> Tensor:
    """Apply ``D_out(R)`` to outputs ``y`` ``(rows, dim)`` (or ``(B, N, dim)`` point-cloud node outputs)."""
    return act_output_affine(y, spec, R, None, batch)


def act_output_affine(y: Tensor, spec: Spec, R: Tensor | None, t: Tensor | None, batch: Tensor | None) -> Tensor:
    """``ρ_out(R, t) y``: ``D_out(R)`` on every output block, then ``+ t`` on the blocks named in
    ``spec.output_positions`` (predicted points move with the frame; vectors and scalars do not).

    ``y`` is ``(rows, dim)`` (rows: graphs, or nodes with ``batch`` their graph ids) or ``(B, N, dim)``
    point-cloud node outputs; ``R`` is ``(n, 3, 3)`` or ``None``, ``t`` ``(n, 3)`` or ``None``, ``n`` 1 or one
    element per graph / sample.
    """
    n = (R if R is not None else t).shape[0]
    if y.dim() == 3:
        B, N, d = y.shape
        per_sample = _rows(n, B, "model output")
        row = torch.arange(B, device=y.device).repeat_interleave(N) if per_sample else None
        return _act_output_rows(y.reshape(B * N, d), spec, R, t, row).reshape(B, N, d)
    spec.check_output(y)
    row = None
    if n > 1 and spec.output_level == "node":
        if batch is None:
            raise ValueError("batch: node-level outputs need the graph id of each row, got None")
        row = batch
    elif n > 1:
        _rows(n, y.shape[0], "model output")
        row = torch.arange(y.shape[0], device=y.device)
    return _act_output_rows(y, spec, R, t, row)


def _act_output_rows(y: Tensor, spec: Spec, R: Tensor | None, t: Tensor | None, row: Tensor | None) -> Tensor:
    if R is not None:
        y = rotate_irreps(y, spec.output, R, row)
    if t is None or not spec.output_positions:
        return y
    shift = t.to(device=y.device, dtype=y.dtype)
    shift = shift[row] if row is not None else shift.expand(y.shape[0], 3)
    blocks = []
    for i, ((mul, _), sl) in enumerate(zip(spec.output, spec.output.slices())):
        positions = i in spec.output_positions
        blocks.append(shift.repeat(1, mul) if positions else y.new_zeros(y.shape[0], sl.stop - sl.start))
    return y + torch.cat(blocks, dim=1)


def _generic_rotations() -> Tensor:
    """Two rotations, about x and y by 1 radian: the subgroup they generate is dense in SO(3)."""
    angle = torch.tensor(1.0, dtype=torch.float64)
    return torch.stack([o3.matrix_x(angle), o3.matrix_y(angle)])


class O3(Group):
    """Rotations and reflections of 3D space: elements are ``(n, 3, 3)`` orthogonal matrices.

    Two cosets: proper rotations (``det R = +1``, coset 0) and improper ones (``det R = -1``, coset 1).
    :meth:`sample` draws both with probability 1/2; :meth:`sample_copies` alternates them by copy, so a
    model that is rotation- but not reflection-equivariant is caught every time.
    """

    name = "O3"
    acts_on = "space"

    @property
    def num_cosets(self) -> int:
        return 2

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        R = haar_rotation(n, generator)
        sign = torch.randint(0, 2, (n,), generator=generator).to(R.dtype) * 2 - 1
        return R * sign[:, None, None]

    def sample_cosets(self, data: AnyData, cosets: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Haar rotations, times ``-I`` where ``cosets`` is 1: ``(num_graphs, 3, 3)``."""
        R = haar_rotation(cosets.shape[0], generator)
        sign = 1 - 2 * cosets.to(device=R.device, dtype=R.dtype)
        return on_device_of(R * sign[:, None, None], data)

    def identity(self, n: int = 1) -> Tensor:
        return torch.eye(3, dtype=torch.float64).expand(n, 3, 3).clone()

    def compose(self, a: Tensor, b: Tensor) -> Tensor:
        return a @ b

    def inverse(self, a: Tensor) -> Tensor:
        return a.transpose(-1, -2)

    def affine_generators(self) -> tuple[Tensor, bool]:
        inversion = -torch.eye(3, dtype=torch.float64)[None]
        return torch.cat([_generic_rotations(), inversion]), False

    def representation(self, g: Tensor, irreps: str) -> Tensor:
        """``D(g)`` on ``irreps``: ``(n, dim, dim)`` float64, from e3nn's ``Irreps.D_from_matrix``."""
        with default_dtype(torch.float64):
            return o3.Irreps(irreps).D_from_matrix(g.to(torch.float64))

    def act(self, g: Tensor, data: AnyData, spec: Spec) -> AnyData:
        return act_matrix(data, spec, g, None, self.name)

    def act_output(self, g: Tensor, y: Tensor, spec: Spec, batch: Tensor | None = None) -> Tensor:
        return act_output_matrix(y, spec, g, batch)


class SO3(O3):
    """Proper rotations of 3D space (``det R = +1``), Haar-sampled."""

    name = "SO3"

    @property
    def num_cosets(self) -> int:
        return 1

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return haar_rotation(n, generator)

    def sample_cosets(self, data: AnyData, cosets: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return on_device_of(haar_rotation(cosets.shape[0], generator), data)

    def affine_generators(self) -> tuple[Tensor, bool]:
        return _generic_rotations(), False


class Translation(Group):
    """Translations of 3D space: elements are ``(n, 3)`` shifts, acting on ``spec.positions``.

    The group is not compact, so :meth:`sample` draws Gaussian shifts with standard deviation ``scale``.
    Outputs move only where the Spec names predicted points (``spec.output_positions``); every other
    output (scalars, vectors, irreps features) is translation invariant.
    """

    name = "Translation"
    acts_on = "space"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randn(n, 3, generator=generator, dtype=torch.float64) * self.scale

    def identity(self, n: int = 1) -> Tensor:
        return torch.zeros(n, 3, dtype=torch.float64)

    def compose(self, a: Tensor, b: Tensor) -> Tensor:
        return a + b

    def inverse(self, a: Tensor) -> Tensor:
        return -a

    def affine_generators(self) -> tuple[Tensor, bool]:
        return torch.eye(3, dtype=torch.float64)[None], True

    def act(self, g: Tensor, data: AnyData, spec: Spec) -> AnyData:
        return act_matrix(data, spec, None, g, self.name)

    def act_output(self, g: Tensor, y: Tensor, spec: Spec, batch: Tensor | None = None) -> Tensor:
        if not spec.output_positions:
            return y
        return act_output_affine(y, spec, None, g, batch)

    def __repr__(self) -> str:
        return f"Translation(scale={self.scale})"


class E3(Group):
    """The Euclidean group: pairs ``(R, t)``, ``R`` orthogonal ``(n, 3, 3)``, ``t`` ``(n, 3)``; ``x -> R x + t``.

    Two cosets like :class:`O3` (``R`` proper or improper). Translations are Gaussian with std ``scale``.
    ``E3(proper=True)`` is the same group as :class:`SE3` (kept for existing configs).
    """

    name = "E3"
    acts_on = "space"

    def __init__(self, scale: float = 1.0, proper: bool = False) -> None:
        self.rotations = SO3() if proper else O3()
        self.translations = Translation(scale)
        self.name = "SE3" if proper else "E3"

    @property
    def num_cosets(self) -> int:
        return self.rotations.num_cosets

    def sample(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        return self.rotations.sample(n, generator), self.translations.sample(n, generator)

    def sample_cosets(
        self, data: AnyData, cosets: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, Tensor]:
        R = self.rotations.sample_cosets(data, cosets, generator)
        return R, on_device_of(self.translations.sample(cosets.shape[0], generator), data)

    def identity(self, n: int = 1) -> tuple[Tensor, Tensor]:
        return self.rotations.identity(n), self.translations.identity(n)

    def compose(self, a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        (Ra, ta), (Rb, tb) = a, b
        return Ra @ Rb, (Ra @ tb.to(Ra.dtype)[..., None])[..., 0] + ta

    def inverse(self, a: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        R, t = a
        Rinv = R.transpose(-1, -2)
        return Rinv, -(Rinv @ t.to(R.dtype)[..., None])[..., 0]

    def affine_generators(self) -> tuple[Tensor, bool]:
        return self.rotations.affine_generators()[0], True

    def representation(self, g: tuple[Tensor, Tensor], irreps: str) -> Tensor:
        """``D(R)`` on ``irreps`` (translations act trivially on irreps features)."""
        return self.rotations.representation(g[0], irreps)

    def act(self, g: tuple[Tensor, Tensor], data: AnyData, spec: Spec) -> AnyData:
        return act_matrix(data, spec, g[0], g[1], self.name)

    def act_output(self, g: tuple[Tensor, Tensor], y: Tensor, spec: Spec, batch: Tensor | None = None) -> Tensor:
        return act_output_affine(y, spec, g[0], g[1], batch)

    def __repr__(self) -> str:
        return f"{self.name}(scale={self.translations.scale})"


class SE3(E3):
    """Proper rigid motions: pairs ``(R, t)`` with ``det R = +1`` (no reflections); ``x -> R x + t``.

    The symmetry of most pretrained interatomic potentials, which are not reflection equivariant.
    Translations are Gaussian with std ``scale``.
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__(scale, proper=True)
