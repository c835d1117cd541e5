"""Training: the Trainer, pretraining, hyperparameter search."""

from geoadapt.train.trainer import Trainer

__all__ = ["Trainer"]
