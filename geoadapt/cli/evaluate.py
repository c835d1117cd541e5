"""``geoadapt evaluate``: the equivariance report card (:mod:`geoadapt.metrics.report_card`) of a checkpoint or a
registered pretrained model on a dataset split; for a file of structures also the errors of the energies, forces
and stresses, and (``source=``) forgetting against the source model."""

from __future__ import annotations

import json
import sys
from typing import Any

MEASURED_BATCHES = 4  # batches of 128 samples measured


def _inputs(config: dict[str, Any], model, device, task, graphs: list | None = None) -> list:
    """The first batches of the split, or of ``graphs`` (inputs only, on ``device``), after a check that the model
    reads them and answers with the rows and columns of its Spec."""
    from geoadapt.cli.data import dataset_card
    from geoadapt.cli.models import check_model_reads, model_label
    from geoadapt.devices import to_device
    from geoadapt.train.pretrain import loader_for, source_splits

    if graphs is None:
        split, limit = config["split"], config["limit"]
        card = dataset_card(config, task.name)
        (dataset,) = source_splits(card, limit, False, label=config["data"], splits=(split,))
        if getattr(dataset, "dropped_line", lambda: None)():
            print(dataset.dropped_line(), file=sys.stderr if config["json"] else sys.stdout)
    else:
        dataset = graphs
    batches = [b for b, _ in zip(loader_for(dataset, 128, False), range(MEASURED_BATCHES))]
    check_model_reads(model, batches, f"{model_label(config, model)} on data {config['data']}", "", task)
    return [to_device(b if not isinstance(b, (list, tuple)) else b[0], device) for b in batches]


def card_from_config(config: dict[str, Any]) -> dict[str, Any]:
    """Load the model and data of ``config`` and measure the report card: the model answers in target units
    (:func:`geoadapt.prediction.resolve_predictor`, the resolution ``geoadapt predict`` uses), so the absolute
    errors are in them; relative errors divide by the task's scale (for regression, the targets' spread)."""
    from geoadapt.cli.models import model_from_config
    from geoadapt.cli.potential_data import is_structure_file, read_structures
    from geoadapt.devices import resolve_device
    from geoadapt.metrics.report_card import report_card
    from geoadapt.models.potential import Forces
    from geoadapt.prediction import resolve_predictor
    from geoadapt.spec import Spec

    device = resolve_device(config["device"])
    model = model_from_config(config).to(device).eval()
    structures = is_structure_file(config["data"])
    target = resolve_predictor(model, config["task"] or ("potential" if structures else None))
    task, network = target.task, target.network
    graphs = read_structures(config["data"], config, model).graphs if structures else None
    graphs = graphs[: config["limit"]] if graphs is not None and config["limit"] else graphs
    inputs = _inputs(config, model, device, task, graphs)
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
    split = "every structure" if graphs is not None else config["split"]
    card = {"checkpoint": source, "arch": model.arch, "data": config["data"], "split": split, **measured}
    if graphs is not None:
        card.update(structure_errors(config, model, graphs))
    return card


def structure_errors(config: dict[str, Any], model, graphs: list) -> dict[str, Any]:
    """``errors``: energy, force and stress errors on ``graphs``; with ``source=``, ``forgetting``: the errors
    against the source model's own labels on source-like crystals without the data's elements."""
    from geoadapt.tasks.forgetting import forgetting, potential_errors

    out: dict[str, Any] = {"errors": {"structures": len(graphs), **potential_errors(model, graphs)}}
    if config.get("source"):
        source, labelled = _source_labels(config, graphs)
        out["forgetting"] = {"source": source, "structures": len(labelled), **forgetting(model, labelled)}
    return out


def _source_labels(config: dict[str, Any], graphs: list) -> tuple[str, list]:
    """The source model's name and its labels of ``forgetting_structures`` source-like crystals (fixed seed, so the
    same crystals every time) without the elements of ``graphs``."""
    from pathlib import Path

    from geoadapt.cli.models import model_from_config
    from geoadapt.data.source_like import source_like_structures
    from geoadapt.train.replay import pseudolabel

    name = str(config["source"])
    given = {"checkpoint": name} if Path(name).expanduser().is_file() else {"model": name, "seed": 0}
    source = model_from_config({**given, "trust_code": config.get("trust_code", False)})
    elements = sorted({int(z) for g in graphs for z in g.z})
    structures = source_like_structures(config["forgetting_structures"], exclude=elements, seed=2)
    return name, pseudolabel(source, structures)


def structure_text(card: dict[str, Any]) -> str:
    """The errors and forgetting of a card as lines of text (empty for a card without them)."""
    from geoadapt.report import table

    if "errors" not in card:
        return ""
    header = ["measured on", "structures", "energy MAE meV/atom", "force MAE meV/Å", "stress MAE meV/Å³"]
    rows = []
    for label, values in (("data", card["errors"]), ("forgetting", card.get("forgetting"))):
        if values is None:
            continue
        where = card["data"] if label == "data" else f"source-like crystals labelled by {values['source']}"
        stress = f"{values['stress_mae']:.3g}" if "stress_mae" in values else "-"
        rows.append([where, values["structures"], f"{values['energy_mae']:.4g}", f"{values['force_mae']:.4g}", stress])
    note = "\n\nErrors (the model against the data's labels; forgetting: against the source model's own labels):\n\n"
    return note + table(header, rows)


def run(config: dict[str, Any]) -> None:
    """Print the card as tables, or as JSON with ``json=true``."""
    from geoadapt.metrics.report_card import card_text

    card = card_from_config(config)
    print(json.dumps(card, indent=2) if config["json"] else card_text(card) + structure_text(card))
