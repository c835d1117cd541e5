"""A small ResNet-style CNN for images ``(B, C, H, W)`` (defaults: 8x8 digits, 10 classes)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geoadapt.models.registry import register
from geoadapt.spec import Spec


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and an identity shortcut."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(x + self.body(x))


@register("cnn")
class CNN(nn.Module):
    """Stem, ``num_blocks`` residual blocks, global average pooling, linear classifier.

    Not rotation invariant by construction (3x3 kernels see orientation); C4 robustness comes from
    training with rotations. Shapes: ``(B, in_channels, H, W)`` -> ``(B, num_classes)``.
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: int = 32, num_blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels), nn.ReLU()
        )
        self.blocks = nn.Sequential(*(ResidualBlock(channels) for _ in range(num_blocks)))
        self.head = nn.Linear(channels, num_classes)
        self.spec = Spec(fields={}, output=f"{num_classes}x0e", positions=())
        self.symmetry = "none"

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.blocks(self.stem(x)).mean((-2, -1)))
