"""Training: the Trainer, pretraining, hyperparameter search."""

from geoadapt.train.options import TrainingOptions
from geoadapt.train.pretrain import pretrain
from geoadapt.train.search import SearchResult, cross_validate, grid_search, kfold_indices, optuna_search
from geoadapt.train.trainer import Trainer

__all__ = [
    "SearchResult",
    "Trainer",
    "TrainingOptions",
    "cross_validate",
    "grid_search",
    "kfold_indices",
    "optuna_search",
    "pretrain",
]
