"""Hyperparameter search: grid search and k-fold cross-validation; Optuna when installed (extra ``optuna``).

Folds and grids come from scikit-learn (``KFold``, ``StratifiedKFold``, ``ParameterGrid``).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, ParameterGrid, StratifiedKFold
from sklearn.utils.multiclass import type_of_target

Objective = Callable[[dict[str, Any]], Mapping[str, float]]
MODES = ("min", "max")


@dataclass
class Trial:
    """One evaluated configuration."""

    params: dict[str, Any]
    metrics: dict[str, float]


@dataclass
class SearchResult:
    """All trials and the best one by ``metric`` (``mode`` min or max)."""

    metric: str
    mode: str
    trials: list[Trial] = field(default_factory=list)

    @property
    def best(self) -> Trial:
        """The best trial."""
        key = (lambda t: t.metrics[self.metric]) if self.mode == "min" else (lambda t: -t.metrics[self.metric])
        return min(self.trials, key=key)


def _check(metric: str, mode: str, metrics: Mapping[str, float]) -> None:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    if metric not in metrics:
        raise ValueError(f"metric: expected one of {sorted(metrics)} returned by the objective, got {metric!r}")


def grid_search(
    objective: Objective, grid: Mapping[str, Sequence[Any]], metric: str, mode: str = "min"
) -> SearchResult:
    """Evaluate ``objective(params)`` on every combination of ``grid`` (dict of name -> values).

    Combinations come in ``sklearn.model_selection.ParameterGrid`` order (names sorted, the last one
    varying fastest); each ``params`` dict keeps the names in the order of ``grid``.
    """
    result = SearchResult(metric, mode)
    for combination in ParameterGrid(dict(grid)):
        params = {name: combination[name] for name in grid}
        metrics = dict(objective(params))
        _check(metric, mode, metrics)
        result.trials.append(Trial(params, metrics))
    return result


def kfold_indices(
    n: int, k: int = 5, seed: int = 0, labels: Sequence[Any] | np.ndarray | None = None
) -> list[dict[str, np.ndarray]]:
    """Shuffled k-fold splits of ``range(n)``: ``[{train, val}]`` index arrays (seeded by ``seed``).

    With class ``labels`` ``(n,)`` the folds are stratified (``StratifiedKFold``: each fold keeps the
    class ratios), else plain ``KFold`` (regression). For train/val/test folds of graph classification
    benchmarks see :func:`geoadapt.data.graphs.stratified_folds`.
    """
    if not 2 <= k <= n:
        raise ValueError(f"k: expected between 2 and {n}, got {k}")
    if labels is None:
        splits = KFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n))
    else:
        labels = np.asarray(labels).reshape(-1)
        if labels.shape[0] != n:
            raise ValueError(f"labels: expected {n} entries (one per sample), got {labels.shape[0]}")
        kind = type_of_target(labels)
        if kind not in ("binary", "multiclass"):
            raise ValueError(f"labels: expected class labels to stratify by, got {kind} values")
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(n), labels)
    return [{"train": train, "val": val} for train, val in splits]


def cross_validate(
    run_fold: Callable[[dict[str, np.ndarray]], Mapping[str, float]], folds: Sequence[dict[str, np.ndarray]]
) -> dict[str, float]:
    """Run ``run_fold(fold)`` on each fold; mean and std (``<metric>_std``) of every returned metric."""
    results = [dict(run_fold(fold)) for fold in folds]
    out: dict[str, float] = {}
    for key in results[0]:
        values = [r[key] for r in results]
        out[key] = statistics.mean(values)
        out[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
    return out


def optuna_search(
    objective: Objective, space: Mapping[str, tuple], metric: str, mode: str = "min", n_trials: int = 20, seed: int = 0
) -> SearchResult:
    """Optuna TPE search. ``space``: name -> ``("float", low, high[, "log"])``, ``("int", low, high)`` or
    ``("categorical", [choices])``. Needs ``pip install 'geoadapt[optuna]'``."""
    try:
        import optuna
    except ImportError as err:
        raise ImportError("optuna_search needs the optional dependency optuna: pip install 'geoadapt[optuna]'") from err
    result = SearchResult(metric, mode)

    def suggest(trial: Any) -> float:
        params = {}
        for name, spec in space.items():
            kind = spec[0]
            if kind == "float":
                params[name] = trial.suggest_float(name, spec[1], spec[2], log=len(spec) > 3 and spec[3] == "log")
            elif kind == "int":
                params[name] = trial.suggest_int(name, spec[1], spec[2])
            elif kind == "categorical":
                params[name] = trial.suggest_categorical(name, list(spec[1]))
            else:
                raise ValueError(f"space[{name!r}]: expected kind float, int or categorical, got {kind!r}")
        metrics = dict(objective(params))
        _check(metric, mode, metrics)
        result.trials.append(Trial(params, metrics))
        return metrics[metric]

    study = optuna.create_study(
        direction="minimize" if mode == "min" else "maximize", sampler=optuna.samplers.TPESampler(seed=seed)
    )
    study.optimize(suggest, n_trials=n_trials)
    return result
