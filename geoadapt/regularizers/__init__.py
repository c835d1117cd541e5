"""Equivariance regularizers: output and feature level, mixed symmetries, constrained and resilient forms.

Each is callable in any training loop, ``loss = task + reg(model, batch)`` (see
:class:`~geoadapt.regularizers.base.RegularizerModule`), and implements the interface the Trainer types against
(:class:`~geoadapt.regularizers.protocol.Regularizer`, :class:`~geoadapt.regularizers.protocol.Constraint`).
"""

from geoadapt.equivariance import DISTANCES
from geoadapt.regularizers.balance import AutoWeight, BalancingStep
from geoadapt.regularizers.base import RegularizerModule
from geoadapt.regularizers.combined import (
    ConstrainedEquivarianceRegularizer,
    MixedEquivarianceRegularizer,
    constraint_verdict,
)
from geoadapt.regularizers.dual import LogMultiplier
from geoadapt.regularizers.equivariance import EquivarianceRegularizer
from geoadapt.regularizers.forecast import BoundForecast, Outlook
from geoadapt.regularizers.penalties import mean_penalty, stacked_forward
from geoadapt.regularizers.protocol import Constraint, Regularizer
from geoadapt.regularizers.schedules import Schedule

__all__ = [
    "DISTANCES",
    "AutoWeight",
    "BalancingStep",
    "BoundForecast",
    "ConstrainedEquivarianceRegularizer",
    "Constraint",
    "EquivarianceRegularizer",
    "LogMultiplier",
    "MixedEquivarianceRegularizer",
    "Outlook",
    "Regularizer",
    "RegularizerModule",
    "Schedule",
    "constraint_verdict",
    "mean_penalty",
    "stacked_forward",
]
