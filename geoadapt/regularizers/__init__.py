"""Equivariance regularizers: output and feature level, mixed symmetries, constrained and resilient forms."""

from geoadapt.metrics.compare import DISTANCES
from geoadapt.regularizers.combined import (
    ConstrainedEquivarianceRegularizer,
    MixedEquivarianceRegularizer,
    constraint_verdict,
)
from geoadapt.regularizers.equivariance import EquivarianceRegularizer, stacked_forward
from geoadapt.regularizers.schedules import Schedule

__all__ = [
    "DISTANCES",
    "ConstrainedEquivarianceRegularizer",
    "EquivarianceRegularizer",
    "MixedEquivarianceRegularizer",
    "Schedule",
    "constraint_verdict",
    "stacked_forward",
]
