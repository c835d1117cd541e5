"""Defaults shared by :func:`geoadapt.pretrain` and ``geoadapt pretrain`` (plain values: importing this is free,
so the command line reads them without loading torch)."""

from __future__ import annotations

PRETRAIN_EPOCHS = 20
LEARNING_RATE = 1e-3
BATCH_SIZE = 32
EVAL_BATCH_SIZE = 256  # validation and evaluation loaders: no gradients, so larger batches
SEED = 0
