"""Task metrics: ROC-AUC for one- and two-logit binary classifiers, and never a silent NaN."""

from __future__ import annotations

import warnings

import pytest
import torch
from sklearn.metrics import roc_auc_score

from geoadapt.metrics.task import UndefinedMetricWarning, classification_metrics


def test_roc_auc_of_a_two_logit_binary_classifier_uses_the_positive_class():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(40, 2, generator=generator, dtype=torch.float64)
    labels = (logits[:, 1] - logits[:, 0] + 0.8 * torch.randn(40, generator=generator, dtype=torch.float64) > 0).long()
    positive = torch.softmax(logits, -1)[:, 1]
    expected = roc_auc_score(labels.numpy(), positive.numpy())  # an independent route: sklearn on p(class 1)
    metrics = classification_metrics(logits, labels)
    assert 0.5 < metrics["roc_auc"] == pytest.approx(expected, abs=1e-12)
    # The same classifier written with one logit (the log-odds) scores the same.
    one_logit = classification_metrics((logits[:, 1] - logits[:, 0])[:, None], labels)
    assert one_logit["roc_auc"] == pytest.approx(expected, abs=1e-12)


def test_roc_auc_with_one_class_present_is_left_out_with_a_warning():
    logits, labels = torch.randn(6, 2), torch.ones(6, dtype=torch.long)
    with pytest.warns(UndefinedMetricWarning, match=r"roc_auc: undefined with labels of 1 class\(es\) \[1\] out of 2"):
        metrics = classification_metrics(logits, labels)
    assert "roc_auc" not in metrics and metrics["accuracy"] == pytest.approx(
        float((logits.argmax(-1) == 1).double().mean())
    )
    with pytest.warns(UndefinedMetricWarning, match=r"\[0, 2\] out of 3"):
        assert "roc_auc" not in classification_metrics(torch.randn(4, 3), torch.tensor([0, 2, 0, 2]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # all classes present: no warning, a number
        assert 0 <= classification_metrics(torch.randn(6, 3), torch.tensor([0, 1, 2, 0, 1, 2]))["roc_auc"] <= 1
