"""Measuring equivariance (error, score, consistency, group accuracy) and task quality."""

from geoadapt.metrics.equivariance import (
    EquivarianceReport,
    GroupAccuracy,
    equivariance_error,
    equivariance_report,
    equivariance_score,
    error_vs_angle,
    group_accuracy,
    group_averaged_accuracy,
    prediction_consistency,
    relative_error,
    score_from_error,
    transformed_outputs,
    worst_case_accuracy,
)
from geoadapt.metrics.task import classification_metrics, regression_metrics

__all__ = [
    "classification_metrics",
    "regression_metrics",
    "EquivarianceReport",
    "GroupAccuracy",
    "equivariance_error",
    "error_vs_angle",
    "equivariance_report",
    "equivariance_score",
    "group_accuracy",
    "group_averaged_accuracy",
    "prediction_consistency",
    "relative_error",
    "score_from_error",
    "transformed_outputs",
    "worst_case_accuracy",
]
