"""Measuring equivariance (error, score, consistency, group accuracy) and task quality."""

from geoadapt.equivariance import Comparison, transformed_outputs
from geoadapt.metrics.collapse import Collapse, CollapseDetector, class_statistics
from geoadapt.metrics.equivariance import (
    EquivarianceMeasurement,
    EquivarianceReport,
    GroupAccuracy,
    equivariance_error,
    equivariance_report,
    equivariance_score,
    error_vs_angle,
    feature_errors,
    group_accuracy,
    group_averaged_accuracy,
    measure_equivariance,
    prediction_consistency,
    score_from_error,
    worst_case_accuracy,
)
from geoadapt.metrics.task import classification_metrics, predicted_class, regression_metrics

__all__ = [
    "Collapse",
    "CollapseDetector",
    "Comparison",
    "EquivarianceMeasurement",
    "EquivarianceReport",
    "GroupAccuracy",
    "class_statistics",
    "classification_metrics",
    "equivariance_error",
    "equivariance_report",
    "equivariance_score",
    "error_vs_angle",
    "feature_errors",
    "group_accuracy",
    "group_averaged_accuracy",
    "measure_equivariance",
    "predicted_class",
    "prediction_consistency",
    "regression_metrics",
    "score_from_error",
    "transformed_outputs",
    "worst_case_accuracy",
]
