"""The data of a command: its task, the dataset card of ``data=`` (a card name or a CSV), its splits, and the
labelled structures of a task that reads them (``task=potential``)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from geoadapt.cli.keys import CSV_KEYS
from geoadapt.errors import ConfigError

POTENTIAL_EVAL_BATCH_SIZE = 64  # validation of potentials: the forces take a backward pass per batch
POTENTIAL_DATA = (
    "md17_<molecule> (a dataset card) or mmff_<set> (MMFF94-labelled rdkit conformers, e.g. mmff_nci) or a file of "
    "structures (.extxyz)"
)


def dataset_card(config: dict[str, Any], model_task: str | None = None) -> dict[str, Any]:
    """The card of ``data=``: a card name, or a CSV of molecules read with ``smiles_column`` / ``target_columns``
    and ``task`` (``model_task``: the task of the model being measured, used when ``task`` is not set)."""
    from geoadapt.data import csv_card, read_card

    data = str(config["data"])
    path = Path(data).expanduser()
    if data.lower().endswith(".csv") or path.is_file():
        if not path.is_file():
            raise ConfigError(f"data: expected a dataset card name or a CSV file, got {data!r} (no such file)")
        columns = _csv_header(path)
        if not config.get("target_columns"):
            raise ConfigError(
                f"target_columns: expected the target column(s) of {data} (e.g. target_columns=[{columns[-1]}]), "
                f"got none; its columns are {columns}"
            )
        task = config.get("task") or model_task
        if task is None:
            from geoadapt.tasks import task_names

            raise ConfigError(f"task: expected one of {list(task_names())} for the CSV file {data}, got none")
        return csv_card(path, config.get("smiles_column") or "smiles", config["target_columns"], task)
    given = [k for k in CSV_KEYS if config.get(k) is not None]
    if given:
        raise ConfigError(
            f"{given[0]}: only used with data=<file.csv>, got the dataset card {data!r} (its card sets it)"
        )
    return read_card(data)


def task_and_card(config: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The task of ``task=`` (else the card's) with ``task_options``, and the dataset card of ``data=`` (for a task
    that reads labelled structures, a card naming only the task)."""
    from geoadapt.tasks import TASKS, make_task

    name = config.get("task")
    if name is not None and TASKS[name].data_kind != "cards":
        return make_task(name, config.get("task_options")), {"task": name}
    card = dataset_card(config)
    return make_task(name or card["task"], config.get("task_options")), card


def _csv_header(path: Path) -> list[str]:
    with path.open(newline="") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise ConfigError(f"data {path}: expected a header line and rows of data, got an empty file")
    return header


def training_splits(card: dict[str, Any], config: dict[str, Any]) -> tuple[Any, Any, dict[str, Any] | None]:
    """Train and validation splits of ``card`` (those of :func:`geoadapt.pretrain`) and the counts of rows dropped
    when loading them; the dropped rows are also said in one printed line."""
    from geoadapt.train.pretrain import source_splits

    train, val = source_splits(card, config["limit"], config["progress"], label=config["data"])
    dropped = train.dropped_counts() if hasattr(train, "dropped_counts") else None
    line = train.dropped_line() if hasattr(train, "dropped_line") else None
    if line:
        print(line)
    return train, val, dropped


def training_loaders(config: dict[str, Any], card: dict[str, Any]) -> tuple[Any, Any, dict[str, Any] | None]:
    """Train and validation loaders of ``adapt`` for a dataset card, and the counts of rows dropped when
    loading (a task that reads labelled structures: :func:`geoadapt.cli.potential_data.structure_loaders`)."""
    from geoadapt import defaults
    from geoadapt.train.pretrain import loader_for

    train, val, dropped = training_splits(card, config)
    return loader_for(train, config["batch_size"], True), loader_for(val, defaults.EVAL_BATCH_SIZE, False), dropped


def potential_dataset(config: dict[str, Any]):
    """Energies and forces for ``task=potential``: ``md17_<molecule>`` or ``mmff_<set>`` (``limit`` molecules)."""
    from geoadapt.data.potentials import load_md17, load_mmff_conformers

    data = str(config["data"])
    if data.startswith("md17_"):
        return load_md17(data.removeprefix("md17_"))
    if data.startswith("mmff_"):
        dataset = load_mmff_conformers(data.removeprefix("mmff_"), limit=config.get("limit") or 40)
        if dataset.failures:
            print(f"{dataset.summary()} (left out: {dataset.failures[:3]})")
        return dataset
    raise ConfigError(f"data: expected {POTENTIAL_DATA} with task=potential, got {data!r}")


def potential_split(dataset, seed: int = 0, val_fraction: float = 0.2) -> tuple[Any, Any]:
    """Training and validation parts of a :class:`~geoadapt.data.potentials.PotentialDataset` (with its ``e0s``):
    whole molecules (``mol_id``) on one side when the set has several."""
    import torch

    graphs = list(dataset.graphs)
    groups = [int(g.mol_id) if getattr(g, "mol_id", None) is not None else i for i, g in enumerate(graphs)]
    keys = sorted(set(groups))
    order = torch.randperm(len(keys), generator=torch.Generator().manual_seed(seed)).tolist()
    held = {keys[i] for i in order[: max(1, round(val_fraction * len(keys)))]}
    train = [i for i, k in enumerate(groups) if k not in held]
    val = [i for i, k in enumerate(groups) if k in held]
    if not train or not val:
        name = getattr(dataset, "name", type(dataset).__name__)
        raise ConfigError(f"data {name}: expected graphs for training and validation, got {len(graphs)}")
    return dataset[train], dataset[val]
