"""Rotating and flipping image batches ``(B, C, H, W)``.

Multiples of 90° use ``torch.rot90`` and are exact. Other angles resample the image bilinearly
on a rotated grid (zeros outside): approximate, so an "equivariance error" under them includes
interpolation error even for a perfectly invariant model.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_QUARTER = math.pi / 2


def check_square(images: Tensor, group: str) -> None:
    """Raise ``ValueError`` unless ``images`` is a square ``(B, C, H, W)`` batch."""
    if images.dim() != 4:
        raise ValueError(f"image: expected shape (B, C, H, W), got {tuple(images.shape)}")
    if images.shape[-1] != images.shape[-2]:
        raise ValueError(
            f"image: {group} rotations need square images, expected H == W, "
            f"got H={images.shape[-2]}, W={images.shape[-1]}"
        )


def rotate_images(images: Tensor, angle: Tensor) -> Tensor:
    """Rotate each image counter-clockwise (as displayed) by ``angle`` radians, ``(B,)`` or ``(1,)``."""
    angle = angle.to(torch.float64).expand(images.shape[0])
    quarters = angle / _QUARTER
    exact = (quarters - quarters.round()).abs() < 1e-6  # float32 angles miss pi/2 by ~4e-8
    out = torch.empty_like(images)
    k_all = quarters.round().long() % 4
    for k in range(4):  # at most four exact cases: a loop over group elements, not samples
        mask = exact & (k_all == k)
        if mask.any():
            out[mask] = torch.rot90(images[mask], k, dims=(-2, -1))
    if (~exact).any():
        out[~exact] = _resample(images[~exact], angle[~exact])
    return out


def _resample(images: Tensor, angle: Tensor) -> Tensor:
    cos, sin = torch.cos(angle), torch.sin(angle)
    # affine_grid maps output coordinates (x right, y down) to input ones; this sign choice
    # makes angle = pi/2 agree with torch.rot90(k=1) (checked in the tests).
    theta = torch.stack(
        [
            torch.stack([cos, sin, torch.zeros_like(cos)], -1),
            torch.stack([-sin, cos, torch.zeros_like(cos)], -1),
        ],
        1,
    )
    grid = F.affine_grid(theta.to(images.dtype), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def flip_images(images: Tensor, flip: Tensor) -> Tensor:
    """Mirror left-right (``x -> -x``) the images where ``flip`` ``(B,)`` is 1."""
    flip = flip.bool().expand(images.shape[0])
    return torch.where(flip[:, None, None, None], torch.flip(images, dims=(-1,)), images)
