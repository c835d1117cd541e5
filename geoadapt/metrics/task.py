"""Task metrics: accuracy, precision, recall, F1, ROC-AUC for classification; MSE, MAE, RMSE, R² for regression."""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from torch import Tensor


class UndefinedMetricWarning(UserWarning):
    """A metric that is undefined on this data (e.g. ROC-AUC with one class) and was left out."""


def regression_metrics(pred: Tensor, target: Tensor) -> dict[str, float]:
    """Over all target entries: ``mse``, ``mae``, ``rmse``, ``r2`` (1 - SSE / SST, per column then averaged)."""
    pred, target = (
        pred.detach().double().reshape(target.shape[0], -1),
        target.detach().double().reshape(target.shape[0], -1),
    )
    err = pred - target
    mse = float(err.pow(2).mean())
    sst = (target - target.mean(0)).pow(2).sum(0)
    r2 = float((1 - err.pow(2).sum(0) / sst.clamp_min(1e-12)).mean()) if target.shape[0] > 1 else math.nan
    return {"mse": mse, "mae": float(err.abs().mean()), "rmse": math.sqrt(mse), "r2": r2}


def predicted_class(logits: Tensor) -> Tensor:
    """The predicted class of classifier outputs ``(n, C)``: ``(n,)`` class ids.

    One logit (binary, the Trainer's ``BCEWithLogits`` setup) predicts class 1 when ``logit > 0``
    (probability above 0.5); several logits predict their argmax. Every accuracy and consistency in
    geoadapt decides classes here.
    """
    if logits.dim() == 1:
        logits = logits[:, None]
    if logits.shape[-1] == 1:
        return (logits[:, 0] > 0).long()
    return logits.argmax(-1)


def roc_auc(prob: Tensor, labels: Tensor) -> float | None:
    """ROC-AUC from class probabilities ``(n, C)`` (``C = 1``: the positive class) and labels ``(n,)``.

    Binary classifiers, with one logit or two, are scored by the positive-class probability; more classes
    one-vs-rest, macro-averaged. Returns None, with a warning naming the classes present, when the AUC is
    undefined because a class is missing from ``labels``; any other problem raises.
    """
    from sklearn.metrics import roc_auc_score

    y = labels.detach().reshape(-1).long().cpu().numpy()
    classes = max(prob.shape[-1], 2)
    present = sorted(set(y.tolist()))
    if len(present) < classes:
        warnings.warn(
            f"roc_auc: undefined with labels of {len(present)} class(es) {present} out of {classes}; left out",
            UndefinedMetricWarning,
            stacklevel=2,
        )
        return None
    scores = prob.detach().double().cpu().numpy()
    if classes == 2:
        return float(roc_auc_score(y, scores[:, -1]))  # the positive class: the only column, or column 1
    return float(roc_auc_score(y, scores, multi_class="ovr", labels=np.arange(classes)))


def classification_metrics(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """``accuracy``, macro ``precision``/``recall``/``f1`` and ``roc_auc`` (binary, or one-vs-rest).

    ``logits``: ``(n, 1)`` binary logits or ``(n, C)`` class logits; ``labels``: ``(n,)`` ints. ``roc_auc``
    is absent (with an :class:`UndefinedMetricWarning`) when a class is missing from ``labels``.
    """
    from sklearn.metrics import precision_recall_fscore_support

    logits, labels = logits.detach().double(), labels.detach().reshape(-1).long()
    if logits.shape[-1] == 1:
        prob = torch.sigmoid(logits)
    else:
        prob = torch.softmax(logits, -1)
    pred = predicted_class(logits)
    average = "binary" if logits.shape[-1] == 1 else "macro"
    y, p = labels.cpu().numpy(), pred.cpu().numpy()  # scikit-learn reads host memory
    precision, recall, f1, _ = precision_recall_fscore_support(y, p, average=average, zero_division=0)
    metrics = {
        "accuracy": float((pred == labels).double().mean()),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
    }
    auc = roc_auc(prob, labels)
    if auc is not None:
        metrics["roc_auc"] = auc
    return metrics
