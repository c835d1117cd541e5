"""Backbones, each declaring its ``spec`` and the symmetry it holds by construction (``model.symmetry``).

``build(name)`` makes a registered backbone (``available()`` lists them); ``wrap(module, spec, symmetry,
init)`` declares your own ``nn.Module`` so strategies, the Trainer and checkpoints (:mod:`geoadapt.checkpoints`:
``geoadapt.save``, ``geoadapt.load``) accept it. A loaded network saved with a target scaler comes back as a
:class:`Predictor`, answering in target units.
"""

from geoadapt.models import cnn, e3nn_gnn, egnn, gcn, gin, naive, pointnet, schnet, sevennet  # noqa: F401  (registration)
from geoadapt.models.custom import register_class, wrap
from geoadapt.models.predictor import Predictor, network_of, scaler_of
from geoadapt.models.registry import available, build, register
from geoadapt.models.scalers import Standardize, TargetScaler, register_scaler

__all__ = [
    "Predictor",
    "Standardize",
    "TargetScaler",
    "available",
    "build",
    "network_of",
    "register",
    "register_class",
    "register_scaler",
    "scaler_of",
    "wrap",
]
