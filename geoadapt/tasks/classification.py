"""Classification: one logit (binary cross-entropy) or one per class (cross-entropy); accuracy and friends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from geoadapt.equivariance import output_rows
from geoadapt.metrics.collapse import CollapseDetector, class_statistics
from geoadapt.metrics.task import classification_metrics
from geoadapt.structure import AnyData
from geoadapt.tasks.base import Pair, Task
from geoadapt.tasks.registry import register_task

COLLAPSED_SHARE = 0.95  # validation predictions of one class at or above this share ...
COLLAPSED_MARGIN = 0.05  # ... and this much above the labels' majority: the classifier collapsed


@register_task
class Classification(Task):
    """Binary (one logit, or two) and multi-class classification of graphs or samples; labels in ``batch.y``.

    Metrics: accuracy, precision, recall, F1, ROC-AUC, the shares of the most common predicted class and label
    (``predicted_majority``, ``label_majority``) and the lowest recall over the classes (``min_class_recall``);
    equivariance metrics add the prediction consistency. The
    equivariance penalty compares standardized logits (``distance="auto"`` is ``"logit"``: neither saturating nor
    shrinking the logits lowers it, :mod:`geoadapt.regularizers.logits`).
    """

    name = "classification"
    default_distance = "logit"
    headline_metric = "accuracy"
    higher_is_better = Task.higher_is_better | {"accuracy", "precision", "recall", "f1", "roc_auc"}
    measures_consistency = True

    def output_columns(self, inputs: AnyData, targets: Any, num_classes: int | None = None) -> int | None:
        """One logit per class beyond two classes (two classes: the architecture's default head)."""
        return num_classes if num_classes and num_classes > 2 else None

    def loss(self, view: nn.Module, out: Tensor, targets: Any, inputs: AnyData) -> Tensor:
        """Binary cross-entropy on one logit, cross-entropy on several."""
        out = output_rows(out, self._bound_spec())
        if out.shape[-1] == 1:
            return F.binary_cross_entropy_with_logits(out[:, 0], targets.reshape(-1).to(out.dtype))
        return F.cross_entropy(out, targets.reshape(-1).long())

    def metrics(self, predictor: nn.Module, batches: Sequence[Pair]) -> dict[str, float]:
        """Classification metrics and the majority shares of predictions and labels."""
        spec = self._bound_spec()
        out = torch.cat([output_rows(predictor(inputs), spec) for inputs, _ in batches])
        y = torch.cat([targets for _, targets in batches])
        return {**classification_metrics(out, y), **class_statistics(out, y)}

    def epoch_checks(self, history: Sequence[Mapping[str, float]]) -> list[str]:
        """Say so the epoch a collapse to one class is detected (:class:`~geoadapt.metrics.CollapseDetector` over
        the validation rows: a one-sided share with a falling recall, three epochs in a row)."""
        collapse = CollapseDetector().check(history)
        if collapse is not None and history and collapse.detected == history[-1].get("epoch", len(history) - 1):
            return [collapse.message()]
        return []

    def final_checks(self, history: Sequence[Mapping[str, float]]) -> list[str]:
        """Say so when the last validation predictions collapsed to one class."""
        last = history[-1] if history else {}
        share, labels = last.get("val_predicted_majority"), last.get("val_label_majority")
        if share is not None and share >= COLLAPSED_SHARE and share > labels + COLLAPSED_MARGIN:
            return [
                f"classifier collapsed: {share:.0%} of validation predictions are one class "
                f"(the most common label is {labels:.0%} of the data)"
            ]
        return []
