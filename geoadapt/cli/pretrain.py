"""``geoadapt pretrain``: train a backbone on a source dataset into a run folder, with :func:`geoadapt.pretrain`'s
pipeline (its splits, Trainer, loaders, defaults and checkpoint record)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRAINING_KEYS = ("epochs", "lr", "batch_size", "seed", "progress", "resume", "device", "precision")


def _train(folder: Path, config: dict[str, Any], card: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """Fit the model in ``folder`` and complete the folder; returns the run's summary and task."""
    from geoadapt import defaults
    from geoadapt.cli.data import training_splits
    from geoadapt.cli.models import pretraining_model
    from geoadapt.runs import finish_run
    from geoadapt.train.pretrain import fit_pretraining, loader_for, pretraining_record

    train, val, dropped = training_splits(card, config)
    val_loader = loader_for(val, defaults.EVAL_BATCH_SIZE, False)
    model = pretraining_model(config, card, val_loader)
    options = {key: config[key] for key in TRAINING_KEYS}
    trainer = fit_pretraining(
        model, train, val, card["task"], augment=config["augment"] or None, run_dir=folder, **options
    )
    data = str(config["data"])
    extra = {"command": "pretrain", "model": config["model"], "data": data, "dropped": dropped}
    record = pretraining_record(trainer.task, config["augment"] or None, config["epochs"])
    summary = finish_run(folder, trainer, val_loader, Path(config["out"]).name, data, extra, record)
    return summary, trainer.task


def run(config: dict[str, Any]) -> None:
    """Pretrain ``model`` on ``data`` and write the run folder ``out`` (``model.pt``, metrics, plots, summary)."""
    from geoadapt.cli.data import dataset_card
    from geoadapt.cli.runs import resume_note
    from geoadapt.groups import group_from_name
    from geoadapt.runs import check_out, run_folder

    if not config["resume"]:
        check_out(config["out"], config["overwrite"])  # before any work
    card = dataset_card(config)
    if config["augment"]:
        group_from_name(config["augment"])  # a bad group name fails before the run folder is made
    resume_note(config)
    with run_folder(config["out"], config["overwrite"], config["resume"], config) as folder:
        summary, task = _train(folder, config, card)
    print(f"pretrained {config['model']} on {config['data']}: {task.headline(summary)}; run folder {config['out']}")
