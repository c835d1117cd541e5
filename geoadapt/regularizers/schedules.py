"""Weight schedules for regularizers: constant, linear warm-up, cosine."""

from __future__ import annotations

import math
from dataclasses import dataclass

KINDS = ("constant", "linear", "cosine")


@dataclass(frozen=True)
class Schedule:
    """Multiplier of a regularizer weight at a given epoch, in [0, 1].

    ``constant``: 1. ``linear``: ramps from 0 to 1 over ``warmup`` epochs. ``cosine``: rises from 0 to 1 along a
    half cosine over ``warmup`` epochs (smooth start), then stays at 1.
    """

    kind: str = "constant"
    warmup: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"schedule kind: expected one of {KINDS}, got {self.kind!r}")
        if self.warmup < 0:
            raise ValueError(f"schedule warmup: expected >= 0 epochs, got {self.warmup}")

    def __call__(self, epoch: float) -> float:
        if self.kind == "constant" or self.warmup == 0:
            return 1.0
        progress = min(max(epoch / self.warmup, 0.0), 1.0)
        return progress if self.kind == "linear" else 0.5 * (1 - math.cos(math.pi * progress))
