"""``geoadapt adapt``: adapt a checkpoint or a registered model to a target dataset with a strategy and
equivariance regularizers (``task=potential``: energies and forces) into a run folder."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from geoadapt.errors import ConfigError


def _provenance(config: dict[str, Any], regularizers: list, trainer, dropped: dict | None) -> dict[str, Any]:
    """What the summary records of the run besides its metrics: command, sources, regularizers and their state."""
    data, source = str(config["data"]), str(config["checkpoint"] or config["model"])
    extra = {"command": "adapt", "strategy": config["strategy"], "data": data, "checkpoint": source}
    extra.update({"regularizers": [repr(r) for r in regularizers], "dropped": dropped})
    for reg in regularizers:
        extra.update(reg.log())
    return {**extra, "constraints": trainer.constraints, "warnings": trainer.warnings}


def _last_line(config: dict[str, Any], summary: dict[str, Any], trainer, regularizers: list) -> str:
    from geoadapt.cli.runs import headline
    from geoadapt.regularizers import constraint_verdict

    if trainer.task == "potential":
        metric = f"val energy MAE {summary['val_energy_mae']:.4g} meV/atom, "
        metric += f"force RMSE {summary['val_force_rmse']:.4g} eV/Å"
    else:
        metric = headline(summary, trainer.task)
    names = " + " + ", ".join(repr(r.name) for r in regularizers) if regularizers else ""
    verdicts = "".join("; " + constraint_verdict(c) for c in trainer.constraints)
    error = summary.get("val_equivariance_error", math.nan)
    return (
        f"adapted on {config['data']} with {config['strategy']}{names}: {metric}, equivariance error {error:.3g}"
        f"{verdicts}; run folder {config['out']}"
    )


def _potential_data(config: dict[str, Any], model) -> tuple[Any, Any]:
    """Read and check every file, set the energy reference and label the replay structures, before any training:
    the training and validation loaders of ``task=potential``."""
    from geoadapt.cli.potential_data import potential_graphs, potential_loaders, replay_graphs, set_energy_reference

    train, val, e0s = potential_graphs(config, model)
    print(set_energy_reference(config, model, train, e0s))
    return potential_loaders(config, train, val, replay_graphs(config, model, train))


def run(config: dict[str, Any]) -> None:
    """Adapt, train and write the run folder ``out``; the last line says the headline metric and equivariance."""
    from geoadapt.cli.data import dataset_card, training_loaders
    from geoadapt.cli.models import check_model_reads, model_from_config, model_label, strategy_from_config
    from geoadapt.cli.potential_data import is_structure_file
    from geoadapt.cli.runs import resume_note
    from geoadapt.groups import group_from_name
    from geoadapt.regularizers.from_config import regularizers_from_config
    from geoadapt.runs import finish_run, run_folder
    from geoadapt.train.from_config import trainer_from_config
    from geoadapt.train.potential import force_spec

    potential = config["task"] == "potential"
    if is_structure_file(config["data"]) and not potential:
        raise ConfigError(
            f"task: expected task=potential for the file of structures {config['data']}, got {config['task']}"
        )
    model = model_from_config(config)
    card = {"task": "potential"} if potential else dataset_card(config)
    loaders = _potential_data(config, model) if potential else None
    groups = [group_from_name(g) for g in config["groups"]]
    regularizers = regularizers_from_config(config, force_spec(model.spec) if potential else model.spec)
    strategy = strategy_from_config(config, model, groups[0])
    for note in strategy.notes:
        print(note)
    resume_note(config)
    with run_folder(config["out"], config["overwrite"], config["resume"], config) as folder:
        train, val, dropped = (*loaders, None) if potential else training_loaders(config, card)
        check_model_reads(model, val, f"{model_label(config, model)} on data {config['data']}", "")
        # task=potential: the energy reference was set above (e0s=), so the Trainer does not refit it again
        options = {"refit_shift": False} if potential else {}
        trainer = trainer_from_config(
            model, config, card["task"], regularizers, strategy, groups=groups, run_dir=folder, **options
        )
        trainer.fit(train, val)
        extra, record = _provenance(config, regularizers, trainer, dropped), {"task": trainer.task, "augment": None}
        # strategy.model: the adapted model as trained (adapters and wrappers are saved with it)
        name = Path(config["out"]).name
        summary = finish_run(folder, trainer, strategy.model, val, name, str(config["data"]), extra, record)
    print(_last_line(config, summary, trainer, regularizers))
