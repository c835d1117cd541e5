"""Early stopping on a validation metric, keeping the best weights."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn


class EarlyStopping:
    """Track ``val_<metric>`` each epoch; keep a copy of the weights of the best epoch; say when to stop.

    ``higher_is_better``: the metrics to maximize (the task's); the others are minimized. ``best`` is
    ``(score, state_dict)`` with ``score`` the metric (negated when minimized), ``best_epoch`` its index in the
    history.
    """

    def __init__(self, metric: str | None, patience: int, higher_is_better: frozenset[str]) -> None:
        self.metric, self.patience, self.higher_is_better = metric, patience, higher_is_better
        self.best: tuple[float, dict[str, Tensor]] | None = None
        self.best_epoch: int | None = None

    def update(self, row: Mapping[str, float], index: int, model: nn.Module) -> tuple[bool, bool]:
        """After the epoch at history ``index``: ``(improved, stop)``; copies ``model``'s weights when improved."""
        if not self.metric:
            return False, False
        key = f"val_{self.metric}"
        if key not in row:
            raise ValueError(
                f"early_stopping: expected a validation metric among "
                f"{sorted(k[4:] for k in row if k.startswith('val_'))}, got {self.metric!r}"
            )
        value = row[key] if self.metric in self.higher_is_better else -row[key]
        if self.best is None or value > self.best[0]:
            self.best = (value, {k: v.detach().clone() for k, v in model.state_dict().items()})
            self.best_epoch = index
            return True, False
        return False, index - self.best_epoch >= self.patience
