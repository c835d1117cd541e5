"""Training: the Trainer, pretraining, hyperparameter search."""

from geoadapt.train.pretrain import pretrain
from geoadapt.train.trainer import Trainer

__all__ = ["Trainer", "pretrain"]
