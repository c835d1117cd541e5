"""Default-dtype handling."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Temporarily set torch's default dtype.

    e3nn computes its constants (Clebsch-Gordan coefficients, basis changes) in the default dtype when
    a module is built, so ``model.double()`` afterwards keeps float32-precision constants. Build a
    model inside ``with default_dtype(torch.float64):`` to check its equivariance to 1e-12.
    """
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
