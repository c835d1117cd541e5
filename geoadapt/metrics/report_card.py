"""The equivariance report card of a model on some batches: per group and per layer, forces too for potentials.

:func:`report_card` measures (a plain dict, JSON-ready); :func:`card_text` renders it as the tables that
``geoadapt evaluate`` prints. Loading the model and the data is the caller's job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from geoadapt.groups import Group, group_from_name
from geoadapt.metrics.equivariance import EquivarianceMeasurement, feature_errors, measure_equivariance
from geoadapt.spec import Spec
from geoadapt.structure import AnyData

LAYER_CONTAINERS = ("layers", "convs")  # the blocks of geoadapt's backbones: per-layer rows for their children
FEATURE_SAMPLES = 2  # group samples per graph for the per-layer errors (one forward for every layer)


def layer_names(model: nn.Module) -> list[str]:
    """The blocks of ``model`` measured per layer: the direct children of its ``layers`` or ``convs`` list."""
    return [n for n, _ in model.named_modules() if n.count(".") == 1 and n.split(".")[0] in LAYER_CONTAINERS]


def _row(m: EquivarianceMeasurement) -> dict[str, Any]:
    return {"group": m.group, "error": m.error, "max_error": m.max_error, "score": m.score,
            "absolute": m.absolute_by_block()}  # fmt: skip


def report_card(
    predictor: nn.Module,
    model: nn.Module,
    inputs: Sequence[AnyData],
    groups: Sequence[Group | str],
    spec: Spec,
    samples: int = 8,
    scale: Tensor | None = None,
    classifier: bool = False,
    forces: nn.Module | None = None,
) -> dict[str, Any]:
    """Measure ``predictor`` on ``inputs`` (batches on its device) under each group; seeded, so repeatable.

    Args:
        predictor: the model as measured (e.g. outputs in target units); ``model``: the same network, whose
            blocks (:func:`layer_names`) get a feature error each under ``"layers"``.
        spec: the outputs' Spec; ``scale``: block scales the relative errors divide by (``None``: the outputs'
            spread); ``classifier``: also the prediction consistency.
        forces: for an energy model, its forces (a module with a node-level ``1o`` ``spec``): rows under
            ``"forces"``.

    Returns:
        ``{"graphs": samples measured, "groups": [row per group], "forces": [...] (with forces)}``; a row holds
        ``group``, ``error`` (mean relative), ``max_error``, ``score``, ``absolute`` (per output block) and,
        as they apply, ``consistency`` and ``layers`` (name -> relative feature error).
    """
    layers = layer_names(model)
    rows, force_rows = [], []
    for group in groups:
        group = group if isinstance(group, Group) else group_from_name(group)
        if forces is not None:
            m = measure_equivariance(forces, inputs, group, forces.spec, samples, torch.Generator().manual_seed(0))
            force_rows.append(_row(m))
        gen = torch.Generator().manual_seed(0)
        m = measure_equivariance(predictor, inputs, group, spec, samples, gen, scale, classifier=classifier)
        row = _row(m)
        if classifier:
            row["consistency"] = m.consistency
        if layers:
            gen = torch.Generator().manual_seed(0)
            row["layers"] = feature_errors(model, inputs[0], group, spec, layers, FEATURE_SAMPLES, gen)
        rows.append(row)
    graphs = sum(len(b) if isinstance(b, Tensor) else b.num_graphs for b in inputs)
    return {"graphs": graphs, "groups": rows, **({"forces": force_rows} if forces is not None else {})}


def _group_cells(g: dict[str, Any]) -> list[str]:
    return [g["group"], f"{g['error']:.2e}", f"{g['max_error']:.2e}", f"{g['score']:.4f}"]


def card_text(card: dict[str, Any]) -> str:
    """The card as text: a heading (``arch``, ``checkpoint``, ``data``, ``split``, ``graphs``), a table per group
    with absolute errors per output block, then forces and per-layer tables when the card has them."""
    from geoadapt.report import table

    first = card["groups"][0]
    parts = [
        f"Equivariance report card: {card['arch']} from {card['checkpoint']} on {card['data']} "
        f"({card['split']}, {card['graphs']} {'input' if card['graphs'] == 1 else 'inputs'} measured)\n"
    ]
    blocks = list(first["absolute"])
    header = ["group", "relative error", "max relative", "score"] + [f"abs error {b}" for b in blocks]
    header += ["consistency"] if "consistency" in first else []
    rows = [
        _group_cells(g)
        + [f"{g['absolute'][b]:.2e}" for b in blocks]
        + ([f"{g['consistency']:.3f}"] if "consistency" in g else [])
        for g in card["groups"]
    ]
    parts.append(table(header, rows))
    if "forces" in card:
        parts.append("\nForces (-dE/dpos, node-level 1o; relative to their spread, absolute in the model's units):\n")
        header = ["group", "relative error", "max relative", "score", "abs error 1x1o"]
        parts.append(table(header, [_group_cells(g) + [f"{g['absolute']['1x1o']:.2e}"] for g in card["forces"]]))
    if "layers" in first:
        names = list(first["layers"])
        parts.append("\nPer layer (relative error of the features, irreps from the model):\n")
        rows = [[g["group"], *[f"{g['layers'][n]:.2e}" for n in names]] for g in card["groups"]]
        parts.append(table(["group", *names], rows))
    return "\n".join(parts)
