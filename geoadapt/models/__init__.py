"""Backbones, each declaring its ``spec`` and the symmetry it holds by construction (``model.symmetry``).

``build(name)`` makes a registered backbone (``available()`` lists them); ``wrap(module, spec, symmetry,
init)`` declares your own ``nn.Module`` so strategies, the Trainer, ``save`` and ``load`` accept it.
"""

from geoadapt.models import cnn, e3nn_gnn, egnn, gcn, gin, naive, pointnet, portable, schnet, sevennet  # noqa: F401  (registration)
from geoadapt.models.checkpoint import load, save
from geoadapt.models.custom import register_class, wrap
from geoadapt.models.registry import available, build, register

__all__ = ["available", "build", "load", "register", "register_class", "save", "wrap"]
