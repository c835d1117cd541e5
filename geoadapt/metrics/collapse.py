"""A classifier collapsing to one class, detected while it trains from its per-epoch validation rows.

A collapse is a share of one predicted class far above the labels' majority *together with* the recall of the
class being given up falling from what the run had reached. Either alone happens in healthy runs: early epochs
often predict mostly the majority class before the model has learned anything (a high share, but a recall that
rises), and a model that ranks well can still shift its threshold for an epoch. So the detector asks for both, for
``patience`` epochs in a row, and names the epoch the collapse started. A run that predicts one class from its
first epoch to its last never had a recall to lose: the end-of-training check reports it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import Tensor

from geoadapt.metrics.task import predicted_class


def class_statistics(logits: Tensor, labels: Tensor) -> dict[str, float]:
    """What the detector reads, from classifier outputs ``(n, C)`` (``C = 1``: one logit) and labels ``(n,)``.

    ``predicted_majority``: the share of the most predicted class; ``label_majority``: the share of the most
    common label; ``min_class_recall``: the lowest recall over the classes present in ``labels`` (a collapse drives
    it to 0, whichever class the predictions collapse to; one logit's ``recall`` only sees the positive class).
    """
    pred, labels = predicted_class(logits.detach()), labels.detach().reshape(-1).long()
    if pred.shape[0] != labels.shape[0]:
        raise ValueError(f"labels: expected one per output row ({pred.shape[0]}), got {labels.shape[0]}")
    classes = max(int(labels.max()) + 1, int(pred.max()) + 1, 2)
    recalls = [float((pred[labels == c] == c).double().mean()) for c in range(classes) if bool((labels == c).any())]
    return {
        "predicted_majority": float(torch.bincount(pred, minlength=classes).max()) / pred.numel(),
        "label_majority": float(torch.bincount(labels, minlength=classes).max()) / labels.numel(),
        "min_class_recall": min(recalls),
    }


@dataclass(frozen=True)
class Collapse:
    """A detected collapse: the epoch it started, the epoch it was detected, and the numbers at detection."""

    start: int
    detected: int
    share: float
    label_share: float
    recall: float
    best_recall: float

    def message(self) -> str:
        """One line for a log or a warning."""
        return (
            f"classifier collapsing to one class since epoch {self.start}: {self.share:.0%} of validation "
            f"predictions are one class (the most common label is {self.label_share:.0%}), the recall of the class "
            f"given up is {self.recall:.2f} (best {self.best_recall:.2f})"
        )


class CollapseDetector:
    """Watches per-epoch rows (``{prefix}predicted_majority``, ``{prefix}label_majority`` and
    ``{prefix}min_class_recall``, else ``{prefix}recall``) and reports a collapse once, the epoch it is sure.

    An epoch is *one-sided* when the predicted share is at least halfway from the labels' majority to a single
    class (``share >= label + (1 - label) * far``); it is *falling* when, besides, the recall is at most ``drop``
    times the best recall of the earlier epochs. A collapse is ``patience`` falling epochs in a row; it started at
    the first of them.

    Args:
        prefix: the key prefix of the rows (``"val_"`` for the Trainer's validation metrics).
        far: how far towards a single class the share must be, as a fraction of the way from the labels' majority.
        drop: the recall, as a fraction of the best earlier recall, at or below which it counts as fallen.
        patience: falling epochs in a row that make a collapse.
    """

    def __init__(self, prefix: str = "val_", far: float = 0.5, drop: float = 0.5, patience: int = 3) -> None:
        if not 0 < far < 1:
            raise ValueError(f"far: expected a fraction in (0, 1), got {far}")
        if not 0 < drop < 1:
            raise ValueError(f"drop: expected a fraction in (0, 1), got {drop}")
        if patience < 1:
            raise ValueError(f"patience: expected at least 1 epoch, got {patience}")
        self.prefix, self.far, self.drop, self.patience = prefix, far, drop, patience
        self.epoch = -1
        self.best_recall = -math.inf
        self.falling_since: int | None = None
        self.collapse: Collapse | None = None

    def update(self, row: Mapping[str, float]) -> Collapse | None:
        """Read one epoch's row; returns the :class:`Collapse` on the epoch it is detected, else ``None`` (rows
        without the keys, e.g. a regression task or no validation data, are skipped)."""
        self.epoch = int(row.get("epoch", self.epoch + 1))
        share, label = row.get(self.prefix + "predicted_majority"), row.get(self.prefix + "label_majority")
        recall = row.get(self.prefix + "min_class_recall", row.get(self.prefix + "recall"))
        if share is None or label is None or recall is None:
            return None
        one_sided = share >= label + (1 - label) * self.far
        falling = one_sided and self.best_recall > 0 and recall <= self.drop * self.best_recall
        self.falling_since = _run_start(self.falling_since, self.epoch, falling)
        best = self.best_recall
        self.best_recall = max(self.best_recall, recall)
        if self.collapse is not None:
            return None
        if self.falling_since is None or self.epoch - self.falling_since + 1 < self.patience:
            return None
        self.collapse = Collapse(self.falling_since, self.epoch, share, label, recall, max(best, recall))
        return self.collapse

    def check(self, rows: Iterable[Mapping[str, float]]) -> Collapse | None:
        """Read a whole history; the collapse it shows (the first), or ``None``."""
        for row in rows:
            self.update(row)
        return self.collapse


def _run_start(since: int | None, epoch: int, holds: bool) -> int | None:
    """The first epoch of the current run of epochs where a condition holds (``None`` once it breaks)."""
    if not holds:
        return None
    return epoch if since is None else since
