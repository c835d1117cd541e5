"""Backbones, each declaring its ``spec`` and the symmetry it holds by construction (``model.symmetry``)."""

from geoadapt.models import cnn, e3nn_gnn, egnn, gcn, gin, naive, pointnet, schnet, sevennet  # noqa: F401  (registration)
from geoadapt.models.checkpoint import load, save
from geoadapt.models.registry import available, build, register

__all__ = ["available", "build", "load", "register", "save"]
