"""Planar groups for images: ``Cyclic(n)``, ``Dihedral(n)`` and ``SO2``.

On images ``(B, C, H, W)`` they rotate (and mirror) the pixel grid; on graphs and point clouds they
act as rotations about the z axis (and the mirror ``x -> -x``), so the same group can be checked on
a 3D model. Outputs transform by the same 3D matrices through ``spec.output`` (class logits: ``0e``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from geoadapt.groups.base import Group, on_device_of
from geoadapt.groups.euclidean import act_matrix, act_output_matrix
from geoadapt.groups.images import check_square, flip_images, rotate_images
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, is_image


def z_rotation(angle: Tensor, flip: Tensor | None = None) -> Tensor:
    """``(n, 3, 3)`` matrices: rotation by ``angle`` about z, after the mirror ``x -> -x`` where ``flip``."""
    angle = angle.to(torch.float64)
    c, s = torch.cos(angle), torch.sin(angle)
    z, o = torch.zeros_like(c), torch.ones_like(c)
    R = torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], 1)
    if flip is not None:
        mirror = torch.ones(angle.shape[0], 3, dtype=torch.float64, device=angle.device)
        mirror[:, 0] = 1 - 2 * flip.to(torch.float64)
        R = R * mirror[:, None, :]
    return R


class _Planar(Group):
    """Shared action: images through the pixel grid, 3D data through :meth:`matrix`."""

    exact_rotations = True
    acts_on = "space"

    def affine_generators(self) -> tuple[Tensor, bool]:
        if self.is_finite:
            return self.matrix(self.elements()), False
        return self.matrix(torch.ones(1, dtype=torch.float64)), False  # 1 radian: dense in SO(2)

    def angle(self, g: Tensor) -> Tensor:
        raise NotImplementedError

    def flips(self, g: Tensor) -> Tensor | None:
        return None

    def matrix(self, g: Tensor) -> Tensor:
        """3D matrices of the elements: ``(n, 3, 3)``."""
        return z_rotation(self.angle(g), self.flips(g))

    def act(self, g: Tensor, data: AnyData, spec: Spec) -> AnyData:
        if not is_image(data):
            return act_matrix(data, spec, self.matrix(g), None, self.name)
        if self.size(g) not in (1, data.shape[0]):
            raise ValueError(
                f"image batch: expected 1 group element or one per image ({data.shape[0]}), got {self.size(g)}"
            )
        if not self.exact_rotations or getattr(self, "n", 2) > 2:
            check_square(data, self.name)
        flips = self.flips(g)
        out = data if flips is None else flip_images(data, flips.to(data.device))
        return rotate_images(out, self.angle(g).to(data.device))

    def act_output(self, g: Tensor, y: Tensor, spec: Spec, batch: Tensor | None = None) -> Tensor:
        return act_output_matrix(y, spec, self.matrix(g).to(y.device), batch)


class Cyclic(_Planar):
    """``C_n``: rotations by multiples of ``360°/n``; elements are LongTensors ``k`` in ``[0, n)``.

    On images the action is exact when ``n`` divides 4 and interpolated otherwise.
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"Cyclic n: expected a positive int, got {n}")
        self.n = n
        self.name = f"C{n}"
        self.exact_rotations = 4 % n == 0

    @property
    def is_finite(self) -> bool:
        return True

    def elements(self) -> Tensor:
        return torch.arange(self.n)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randint(0, self.n, (n,), generator=generator)

    def identity(self, n: int = 1) -> Tensor:
        return torch.zeros(n, dtype=torch.long)

    def compose(self, a: Tensor, b: Tensor) -> Tensor:
        return (a + b) % self.n

    def inverse(self, a: Tensor) -> Tensor:
        return (-a) % self.n

    def angle(self, g: Tensor) -> Tensor:
        return g.to(torch.float64) * (2 * math.pi / self.n)

    def __repr__(self) -> str:
        return f"Cyclic({self.n})"


class Dihedral(_Planar):
    """``D_n``: rotations and mirrors; elements are ``(n, 2)`` LongTensors ``(k, f)`` meaning ``r^k s^f``.

    ``s`` is the mirror ``x -> -x`` (left-right on images), applied before the rotation. Two cosets:
    rotations (``f = 0``) and mirrors (``f = 1``).
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"Dihedral n: expected a positive int, got {n}")
        self.n = n
        self.name = f"D{n}"
        self.exact_rotations = 4 % n == 0

    @property
    def is_finite(self) -> bool:
        return True

    def elements(self) -> Tensor:
        k = torch.arange(self.n).repeat(2)
        f = torch.arange(2).repeat_interleave(self.n)
        return torch.stack([k, f], -1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.stack(
            [
                torch.randint(0, self.n, (n,), generator=generator),
                torch.randint(0, 2, (n,), generator=generator),
            ],
            -1,
        )

    @property
    def num_cosets(self) -> int:
        return 2

    def sample_cosets(self, data: AnyData, cosets: Tensor, generator: torch.Generator | None = None) -> Tensor:
        k = torch.randint(0, self.n, (cosets.shape[0],), generator=generator)
        return on_device_of(torch.stack([k, cosets.to(torch.long).cpu()], -1), data)

    def identity(self, n: int = 1) -> Tensor:
        return torch.zeros(n, 2, dtype=torch.long)

    def compose(self, a: Tensor, b: Tensor) -> Tensor:
        # r^k1 s^f1 r^k2 s^f2 = r^(k1 + (-1)^f1 k2) s^(f1 + f2), since s r s = r^-1
        sign = 1 - 2 * a[:, 1]
        return torch.stack([(a[:, 0] + sign * b[:, 0]) % self.n, (a[:, 1] + b[:, 1]) % 2], -1)

    def inverse(self, a: Tensor) -> Tensor:
        k = torch.where(a[:, 1] == 1, a[:, 0], (-a[:, 0]) % self.n)
        return torch.stack([k, a[:, 1]], -1)

    def angle(self, g: Tensor) -> Tensor:
        return g[:, 0].to(torch.float64) * (2 * math.pi / self.n)

    def flips(self, g: Tensor) -> Tensor:
        return g[:, 1]

    def __repr__(self) -> str:
        return f"Dihedral({self.n})"


class SO2(_Planar):
    """Continuous planar rotations; elements are angles ``(n,)`` in radians, sampled uniformly.

    On images, angles that are not multiples of 90° are applied by bilinear resampling (approximate).
    """

    name = "SO2"
    exact_rotations = False

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.rand(n, generator=generator, dtype=torch.float64) * (2 * math.pi)

    def identity(self, n: int = 1) -> Tensor:
        return torch.zeros(n, dtype=torch.float64)

    def compose(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.remainder(a + b, 2 * math.pi)

    def inverse(self, a: Tensor) -> Tensor:
        return torch.remainder(-a, 2 * math.pi)

    def angle(self, g: Tensor) -> Tensor:
        return g

    def equal(self, a: Tensor, b: Tensor, atol: float = 1e-6) -> bool:
        diff = torch.remainder(a - b + math.pi, 2 * math.pi) - math.pi
        return bool((diff.abs() < atol).all())
