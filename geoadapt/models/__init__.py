"""Backbones, each declaring its ``spec`` and the symmetry it holds by construction."""

from geoadapt.models import e3nn_gnn, gin, naive  # noqa: F401  (registers the backbones)
from geoadapt.models.registry import available, build, register

__all__ = ["available", "build", "register"]
