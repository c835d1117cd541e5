"""The collapse detector: fires during training on a run that slides to one class, names the epoch it started, and
stays quiet on healthy runs (including their early epochs, which often predict mostly the majority class)."""

from __future__ import annotations

import pytest
import torch

from geoadapt.metrics.collapse import CollapseDetector, class_statistics


def rows(shares, recalls, label=0.55):
    return [
        {"epoch": e, "val_predicted_majority": s, "val_label_majority": label, "val_min_class_recall": r}
        for e, (s, r) in enumerate(zip(shares, recalls))
    ]


def test_class_statistics_against_counting_by_hand():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 2, (50,), generator=generator)
    logits = torch.randn(50, 1, generator=generator)
    stats = class_statistics(logits, labels)
    pred = [int(v > 0) for v in logits[:, 0].tolist()]
    ys = labels.tolist()
    by_class = []
    for c in (0, 1):
        mine = [p for p, y in zip(pred, ys) if y == c]
        by_class.append(sum(p == c for p in mine) / len(mine))
    assert stats["min_class_recall"] == pytest.approx(min(by_class))
    assert stats["predicted_majority"] == pytest.approx(max(pred.count(0), pred.count(1)) / 50)
    assert stats["label_majority"] == pytest.approx(max(ys.count(0), ys.count(1)) / 50)
    two = class_statistics(torch.stack([torch.zeros(50), logits[:, 0]], -1), labels)  # two logits, same decisions
    assert two == stats


def test_class_statistics_refuses_mismatched_labels():
    with pytest.raises(ValueError, match="labels: expected one per output row"):
        class_statistics(torch.zeros(4, 1), torch.zeros(3))


def test_fires_during_training_on_a_slide_to_one_class():
    # Learns (recall up to 0.6), then slides: 94% of predictions in one class and recall 0.11 at the end.
    shares = [0.60, 0.58, 0.62, 0.80, 0.88, 0.92, 0.94, 0.94]
    recalls = [0.40, 0.55, 0.60, 0.30, 0.20, 0.15, 0.11, 0.11]
    detector = CollapseDetector()
    found = [detector.update(r) for r in rows(shares, recalls)]
    detected = [i for i, f in enumerate(found) if f is not None]
    assert detected == [5]  # once, at the third falling epoch in a row: before the end of training
    collapse = detector.collapse
    assert collapse.start == 3 and collapse.detected == 5
    assert "since epoch 3" in collapse.message() and "92%" in collapse.message()


def test_quiet_on_healthy_runs_with_an_early_one_class_phase():
    # Measured shapes of healthy runs: the first epochs predict mostly one class with a low recall, then recover.
    early = rows([0.88, 0.70, 0.53, 0.70, 0.74, 0.50, 0.72, 0.53, 0.51, 0.58], [0.11, 0.6, 0.57, 0.7, 0.72] * 2)
    wobble = rows([0.69, 0.79, 0.92, 0.84, 0.59, 0.57, 0.64, 0.59], [0.5, 0.6, 0.3, 0.45, 0.8, 0.7, 0.55, 0.8])
    for history in (early, wobble):
        assert CollapseDetector().check(history) is None


def test_one_class_from_the_start_is_left_to_the_end_of_training_check():
    # Early epochs often predict one class while nothing is learned yet: no recall has fallen, no alarm.
    assert CollapseDetector().check(rows([0.97] * 6, [0.0] * 6)) is None


def test_rows_without_the_keys_are_skipped_and_options_are_checked():
    assert CollapseDetector().check([{"epoch": 0, "val_rmse": 1.0}]) is None
    with pytest.raises(ValueError, match="far: expected a fraction"):
        CollapseDetector(far=1.5)
    with pytest.raises(ValueError, match="patience: expected"):
        CollapseDetector(patience=0)
