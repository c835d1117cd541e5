"""Acting with a batch of O(3) matrices on irreps-typed features (via e3nn's Wigner matrices)."""

from __future__ import annotations

import torch
from e3nn import o3
from torch import Tensor

from geoadapt.dtypes import default_dtype


def irrep_matrices(irreps: o3.Irreps, R: Tensor) -> dict[o3.Irrep, Tensor]:
    """Representation matrices ``D_ir(R)``, ``(n, 2l+1, 2l+1)``, for each distinct irrep of ``irreps``.

    ``R`` is ``(n, 3, 3)`` with determinant ±1; the matrices are float64.
    For ``l <= 1`` the closed forms (``1``, ``det R``,
    ``R``, ``det(R) R``) are used; they equal e3nn's ``Irrep.D_from_matrix`` in its ``xyz``
    basis (checked in the tests) and avoid e3nn's angle round trip on the hot path.
    """
    R = R.to(torch.float64)  # e3nn's D_from_matrix is only as precise as the default dtype
    det = torch.det(R)
    out: dict[o3.Irrep, Tensor] = {}
    for _, ir in irreps:
        if ir in out:
            continue
        sign = det if ir.p == -1 else torch.ones_like(det)
        if ir.l == 0:
            out[ir] = sign[:, None, None]
        elif ir.l == 1:
            # A 1o vector rotates with R itself; a 1e (pseudo)vector with det(R) R.
            out[ir] = R * (det if ir.p == 1 else torch.ones_like(det))[:, None, None]
        else:
            with default_dtype(torch.float64):
                out[ir] = o3.Irreps(str(ir)).D_from_matrix(R)
    return out


def is_invariant(irreps: o3.Irreps) -> bool:
    """True when every irrep is ``0e`` (nothing to do under O(3))."""
    return all(ir.l == 0 and ir.p == 1 for _, ir in irreps)


def rotate_irreps(
    x: Tensor, irreps: o3.Irreps, R: Tensor, row: Tensor | None = None, matrices: dict[o3.Irrep, Tensor] | None = None
) -> Tensor:
    """Apply ``D(R)`` to every row of ``x``.

    Args:
        x: features ``(rows, irreps.dim)`` in e3nn's ``mul x ir`` layout.
        irreps: irreps of one row.
        R: ``(n, 3, 3)`` orthogonal matrices.
        row: ``(rows,)`` which matrix acts on each row; ``None`` when ``n == 1`` (shared by all rows).
        matrices: precomputed :func:`irrep_matrices` (to share them between fields).

    Returns:
        ``(rows, irreps.dim)`` transformed features (``x`` itself when all irreps are ``0e``).
    """
    if is_invariant(irreps):
        return x
    mats = matrices if matrices is not None else irrep_matrices(irreps, R)
    blocks = []
    for (mul, ir), sl in zip(irreps, irreps.slices()):
        block = x[:, sl]
        if ir.l == 0 and ir.p == 1:
            blocks.append(block)  # scalars are invariant: skip the arithmetic
            continue
        D = mats[ir].to(x.device, x.dtype)
        block = block.reshape(x.shape[0], mul, ir.dim)
        if row is None:
            block = torch.einsum("ij,rmj->rmi", D[0], block)
        else:
            block = torch.einsum("rij,rmj->rmi", D[row], block)
        blocks.append(block.reshape(x.shape[0], mul * ir.dim))
    return torch.cat(blocks, dim=1) if len(blocks) > 1 else blocks[0]


def quaternion_matrix(q: Tensor) -> Tensor:
    """Rotation matrices ``(n, 3, 3)`` of unit quaternions ``q`` ``(n, 4)`` (real part first).

    The closed form ``(w² - |v|²) I + 2 v vᵀ + 2 w [v]×`` (equal to e3nn's ``quaternion_to_matrix``, see
    the tests); e3nn's route goes through axis-angle and Euler angles, a few dozen small ops that
    showed up in the per-step cost of the regularizer.
    """
    w, v = q[:, 0], q[:, 1:]
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(w)
    cross = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=q.dtype, device=q.device)
    return (
        (w * w - (v * v).sum(-1))[:, None, None] * eye
        + 2 * v[:, :, None] * v[:, None, :]
        + 2 * w[:, None, None] * cross
    )


def haar_rotation(n: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64) -> Tensor:
    """``n`` Haar-random rotation matrices ``(n, 3, 3)`` (normalized Gaussian quaternions).

    Elements are float64 so that they stay orthogonal to round-off in float64 checks; actions
    cast them to the dtype of the data they act on.
    """
    q = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    return quaternion_matrix(q / q.norm(dim=1, keepdim=True)).to(dtype)
