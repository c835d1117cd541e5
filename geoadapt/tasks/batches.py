"""Batches as (inputs, targets) pairs, and the check that a model's output has the rows its Spec promises."""

from __future__ import annotations

from torch import Tensor, nn

from geoadapt.spec import Spec
from geoadapt.structure import AnyData, is_graph, num_graphs


def split_batch(batch: object) -> tuple[AnyData, Tensor]:
    """``(inputs, targets)`` from a PyG batch (``batch.y``) or an ``(inputs, targets)`` tuple."""
    if is_graph(batch):
        if getattr(batch, "y", None) is None:
            raise ValueError("batch.y: expected targets on the graph batch, got None")
        return batch, batch.y
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError(f"batch: expected a PyG Batch with y or an (inputs, targets) pair, got {type(batch).__name__}")


def model_label(model: nn.Module) -> str:
    """How errors name a model: its registered architecture and class (``naive_gnn (NaiveGNN)``) or its class."""
    arch = getattr(model, "arch", None)
    name = type(model).__name__
    return f"{arch} ({name})" if isinstance(arch, str) and arch != name else name


def expected_rows(inputs: AnyData, spec: Spec) -> tuple[int, str]:
    """The output rows ``spec`` promises on ``inputs`` and what they are: ``(graphs, "graphs")``, ``(nodes,
    "nodes")`` or, for tensor inputs, ``(samples, "samples")``."""
    if is_graph(inputs):
        if spec.output_level == "node":
            return int(inputs.num_nodes), "nodes"
        return num_graphs(inputs), "graphs"
    return int(inputs.shape[0]), "samples"


def check_output_rows(out: object, inputs: AnyData, spec: Spec, model: nn.Module) -> None:
    """Raise one ``ValueError`` naming the model, the rows and columns ``spec`` expects on ``inputs`` and the shape
    ``out`` has, when they differ (a graph-level model returning per-atom rows, a wrong column count).

    Accepted: ``(rows, dim)``; ``(rows,)`` when ``dim`` is 1 (the PyG habit for one scalar target); point clouds
    with node-level outputs ``(samples, points, dim)``.
    """
    if not isinstance(out, Tensor):
        raise TypeError(f"model {model_label(model)} output: expected a Tensor, got {type(out).__name__}")
    rows, what = expected_rows(inputs, spec)
    dim = spec.output.dim
    shape = tuple(out.shape)
    if not is_graph(inputs) and spec.output_level == "node" and inputs.dim() == 3:
        if shape == (rows, int(inputs.shape[1]), dim):
            return
        expected = f"({rows}, {int(inputs.shape[1])}, {dim}): one row per point of each of the {rows} samples"
    else:
        if shape == (rows, dim) or (dim == 1 and shape == (rows,)):
            return
        expected = f"({rows}, {dim}): one row per {what[:-1]} ({rows} {what} in the batch)"
    raise ValueError(
        f"model {model_label(model)} output: expected shape {expected} for its {spec.output_level}-level Spec output "
        f"{spec.output}, got shape {shape}"
    )
