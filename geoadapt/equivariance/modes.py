"""The modes a model is run in for a comparison: eval mode for measuring, and the quiet training forward of a
penalty through dropout and batch norm (:func:`stochastic_layers`, :func:`quiet`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from torch import nn

_STOCHASTIC = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)


@contextmanager
def evaluating(model: object) -> Iterator[None]:
    """Eval mode without gradients inside the block; the model's training flags are restored afterwards."""
    modules = list(model.modules()) if isinstance(model, nn.Module) else []
    flags = [m.training for m in modules]
    if isinstance(model, nn.Module):
        model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, flag in zip(modules, flags):
            m.training = flag


def stochastic_layers(model: object) -> list[nn.Module]:
    """Dropout and batch-norm layers of ``model`` in training mode: where a row's output depends on chance or on
    the other rows of its forward pass."""
    if not isinstance(model, nn.Module):
        return []
    return [m for m in model.modules() if isinstance(m, _STOCHASTIC) and m.training]


@contextmanager
def quiet(layers: Sequence[nn.Module]) -> Iterator[None]:
    """Inside the block: dropout of ``layers`` off; their batch norms still normalize by the statistics of the
    forward pass, but leave their running statistics as they were (the copies are not data to learn them from)."""
    dropouts = [m for m in layers if isinstance(m, nn.modules.dropout._DropoutNd)]
    norms = [m for m in layers if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    # The forward updates stand-in copies of the running statistics, which are dropped afterwards; the originals are
    # put back, never overwritten (autograd keeps the stand-ins it saw, at the version it saw).
    saved = [{k: v for k, v in m.named_buffers(recurse=False) if v is not None} for m in norms]
    for m, buffers in zip(norms, saved):
        for k, v in buffers.items():
            setattr(m, k, v.clone())
    for m in dropouts:
        m.training = False
    try:
        yield
    finally:
        for m in dropouts:
            m.training = True
        for m, buffers in zip(norms, saved):
            for k, v in buffers.items():
                setattr(m, k, v)
