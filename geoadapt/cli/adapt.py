"""``geoadapt adapt``: adapt a checkpoint or a registered model to a target dataset with a strategy and
equivariance regularizers (``task=potential``: energies and forces) into a run folder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _provenance(config: dict[str, Any], regularizers: list, trainer, dropped: dict | None) -> dict[str, Any]:
    """What the summary records of the run besides its metrics: command, sources, regularizers and their state."""
    data, source = str(config["data"]), str(config["checkpoint"] or config["model"])
    extra = {"command": "adapt", "strategy": config["strategy"], "data": data, "checkpoint": source}
    extra.update({"regularizers": [repr(r) for r in regularizers], "dropped": dropped})
    for reg in regularizers:
        extra.update(reg.log())
    return {**extra, "constraints": trainer.constraints, "warnings": trainer.warnings}


def _last_line(config: dict[str, Any], summary: dict[str, Any], trainer, regularizers: list) -> str:
    from geoadapt.regularizers import constraint_verdict

    metric = trainer.task.headline(summary)
    names = " + " + ", ".join(repr(r.name) for r in regularizers) if regularizers else ""
    verdicts = "".join("; " + constraint_verdict(c) for c in trainer.constraints)
    error = summary.get("val_equivariance_error", math.nan)
    return (
        f"adapted on {config['data']} with {config['strategy']}{names}: {metric}, equivariance error {error:.3g}"
        f"{verdicts}; run folder {config['out']}"
    )


def run(config: dict[str, Any]) -> None:
    """Adapt, train and write the run folder ``out``; the last line says the headline metric and equivariance."""
    from geoadapt.cli.data import task_and_card, training_loaders
    from geoadapt.cli.models import check_model_reads, model_from_config, model_label, strategy_from_config
    from geoadapt.cli.potential_data import check_structure_task, structure_loaders
    from geoadapt.cli.runs import resume_note
    from geoadapt.groups import group_from_name
    from geoadapt.regularizers.from_config import regularizers_from_config
    from geoadapt.runs import check_out, finish_run, run_folder
    from geoadapt.train.from_config import trainer_from_config

    if not config["resume"]:
        check_out(config["out"], config["overwrite"])  # before any work
    check_structure_task(config)
    model = model_from_config(config)
    task, card = task_and_card(config)
    task.bind(model, model.spec)  # a task that cannot train this model fails here, before the run folder
    # Labelled structures are read and checked in full, the energy reference set and replay labelled, before the
    # run folder exists.
    loaders = structure_loaders(config, model, task) if task.data_kind == "structures" else None
    groups = [group_from_name(g) for g in config["groups"]]
    regularizers = regularizers_from_config(config, task.view_spec(model.spec))
    strategy = strategy_from_config(config, model, groups[0])
    for note in strategy.notes:
        print(note)
    resume_note(config)
    with run_folder(config["out"], config["overwrite"], config["resume"], config) as folder:
        train, val, dropped = (*loaders, None) if loaders else training_loaders(config, card)
        check_model_reads(model, val, f"{model_label(config, model)} on data {config['data']}", "", task)
        settings = {**config, "task_options": {}}  # the task is built with them
        trainer = trainer_from_config(model, settings, task, regularizers, strategy, groups=groups, run_dir=folder)
        trainer.fit(train, val)
        extra, record = _provenance(config, regularizers, trainer, dropped), {"task": task.name, "augment": None}
        name = Path(config["out"]).name
        summary = finish_run(folder, trainer, val, name, str(config["data"]), extra, record)
    print(_last_line(config, summary, trainer, regularizers))
