"""Model outputs as rows: one per sample, or one per node (point-cloud node outputs: ``(B, N, dim)``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geoadapt.devices import data_device
from geoadapt.equivariance.budget import split_nodes
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, is_graph, runs_under


def output_rows(out: object, spec: Spec) -> Tensor:
    """Model outputs as ``(rows, spec.output.dim)`` (point-cloud node outputs: ``(B, N, dim)``).

    A ``(rows,)`` output is accepted for a one-dimensional output (``1x0e``: the PyG habit of returning
    ``(B,)`` for a scalar target). Anything else that does not fit raises a ``ValueError`` naming the shapes.
    """
    if not isinstance(out, Tensor):
        raise TypeError(f"model output: expected a Tensor, got {type(out).__name__}")
    dim = spec.output.dim
    if out.dim() == 1 and dim == 1:
        return out[:, None]
    if out.dim() in (2, 3) and out.shape[-1] == dim:
        return out
    raise ValueError(f"model output: expected shape (rows, {dim}) for irreps {spec.output}, got {tuple(out.shape)}")


def measured_rows(model: nn.Module, data: AnyData, spec: Spec) -> Tensor:
    """``output_rows(model(data))``, in runs of consecutive graphs of at most :func:`split_nodes` nodes where the
    model asks for it and ``data`` is a graph batch on the CPU (a graph larger than the budget runs alone)."""
    budget = split_nodes(model)
    if budget is None or not is_graph(data) or data_device(data).type != "cpu" or data.num_nodes <= budget:
        return output_rows(model(data), spec)
    return torch.cat([output_rows(model(run), spec) for run in runs_under(data, budget, spec)])
