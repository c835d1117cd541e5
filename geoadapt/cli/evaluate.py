"""``geoadapt evaluate``: the equivariance report card (:mod:`geoadapt.metrics.report_card`) of a checkpoint or a
registered pretrained model on a dataset split."""

from __future__ import annotations

import json
import sys
from typing import Any

MEASURED_BATCHES = 4  # batches of 128 samples measured


def _inputs(config: dict[str, Any], model, device, task) -> list:
    """The first batches of the split (inputs only, on ``device``), after a check that the model reads them and
    answers with the rows and columns of its Spec."""
    from geoadapt.cli.data import dataset_card
    from geoadapt.cli.models import check_model_reads, model_label
    from geoadapt.devices import to_device
    from geoadapt.train.pretrain import loader_for, source_splits

    split, limit = config["split"], config["limit"]
    card = dataset_card(config, task.name)
    (dataset,) = source_splits(card, limit, False, label=config["data"], splits=(split,))
    if getattr(dataset, "dropped_line", lambda: None)():
        print(dataset.dropped_line(), file=sys.stderr if config["json"] else sys.stdout)
    batches = [b for b, _ in zip(loader_for(dataset, 128, False), range(MEASURED_BATCHES))]
    check_model_reads(model, batches, f"{model_label(config, model)} on data {config['data']}", "", task)
    return [to_device(b if not isinstance(b, (list, tuple)) else b[0], device) for b in batches]


def card_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """Load the model and data of ``config`` and measure the report card: the model answers in target units
    (:func:`geoadapt.prediction.resolve_predictor`, the resolution ``geoadapt predict`` uses), so the absolute
    errors are in them; relative errors divide by the task's scale (for regression, the targets' spread)."""
    from geoadapt.cli.models import model_from_config
    from geoadapt.devices import resolve_device
    from geoadapt.metrics.report_card import report_card
    from geoadapt.models.potential import Forces
    from geoadapt.prediction import resolve_predictor
    from geoadapt.spec import Spec

    device = resolve_device(config["device"])
    model = model_from_config(config).to(device).eval()
    target = resolve_predictor(model, config["task"])
    task, network = target.task, target.network
    inputs = _inputs(config, model, device, task)
    # An energy model evaluated on data with forces: its forces (node-level 1o) get their own rows.
    energy_model = model.spec.output == Spec(output="0e").output and model.spec.output_level == "graph"
    forces = Forces(network) if energy_model and all(getattr(b, "force", None) is not None for b in inputs) else None
    groups = [g for g in config["groups"].split(",") if g]
    consistency, scale = task.measures_consistency, target.scale
    predictor = target.module.eval()
    measured = report_card(
        predictor, network, inputs, groups, model.spec, config["samples"], scale, consistency, forces
    )
    source = str(config["checkpoint"] or config["model"])
    return {"checkpoint": source, "arch": model.arch, "data": config["data"], "split": config["split"], **measured}


def run(config: dict[str, Any]) -> None:
    """Print the card as tables, or as JSON with ``json=true``."""
    from geoadapt.metrics.report_card import card_text

    card = card_from_config(config)
    print(json.dumps(card, indent=2) if config["json"] else card_text(card))
