"""scikit-learn digits (8x8 handwriting) as an image dataset, with rotated test sets."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.utils.data import Dataset

from geoadapt.groups import SO2, Cyclic
from geoadapt.spec import Spec

DIGITS_SPEC = Spec(fields={}, output="10x0e", positions=())


@dataclass
class ImageDataset(Dataset):
    """Images ``(n, C, H, W)`` in [0, 1] with integer labels ``(n,)``; items are ``(image, label)``."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    spec: Spec = DIGITS_SPEC

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index):
        if isinstance(index, int):
            return self.images[index], self.labels[index]
        index = torch.as_tensor(index)
        return ImageDataset(self.name, self.images[index], self.labels[index], self.spec)

    def rotated(self, degrees: float) -> ImageDataset:
        """Every image rotated by ``degrees`` (exact for multiples of 90, bilinear otherwise)."""
        angle = torch.full((len(self),), math.radians(degrees), dtype=torch.float64)
        return ImageDataset(
            f"{self.name}@{degrees:g}", SO2().act(angle, self.images, self.spec), self.labels, self.spec
        )

    def c4_rotated(self, seed: int = 0) -> ImageDataset:
        """Each image rotated by a random multiple of 90 degrees (exact)."""
        k = Cyclic(4).sample(len(self), torch.Generator().manual_seed(seed))
        return ImageDataset(f"{self.name}@C4", Cyclic(4).act(k, self.images, self.spec), self.labels, self.spec)


def load_digits() -> ImageDataset:
    """The 1,797 scikit-learn digits as ``(1797, 1, 8, 8)`` float images in [0, 1], labels 0..9."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32)[:, None] / 16.0
    return ImageDataset("digits", images, torch.tensor(bunch.target, dtype=torch.long))
