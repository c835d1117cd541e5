"""``geoadapt`` command line: pretrain, adapt, evaluate, report, bench, datasets.

Every command takes ``--config file.yaml`` and ``key=value`` overrides (values parsed as YAML, and
checked against the type of the default). Errors print one line and exit 2; ``--debug`` shows the traceback.
Ctrl-C keeps the run's partial folder and prints the command that resumes it (exit 130).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import os
import re
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:  # the CLI imports torch lazily so that --help stays fast
    import torch

    from geoadapt.spec import Spec

REQUIRED = object()

DEFAULTS: dict[str, dict[str, Any]] = {
    "pretrain": {
        "model": REQUIRED,
        "data": REQUIRED,
        "out": REQUIRED,
        "model_config": {},
        "limit": None,
        "epochs": 10,
        "lr": 1e-3,
        "batch_size": 32,
        "augment": None,
        "seed": 0,
        "smiles_column": None,
        "target_columns": None,
        "task": None,
        "overwrite": False,
        "resume": False,
        "progress": True,
        "device": "auto",
        "precision": "32",
    },
    "adapt": {
        "checkpoint": None,  # a checkpoint file, or
        "model": None,  # a registered pretrained model by name, e.g. model=sevennet_0
        "data": REQUIRED,
        "out": REQUIRED,
        "limit": None,
        "strategy": "finetune",
        "strategy_options": {},  # any option of the strategy's options dataclass, e.g. {rank: 8, alpha: 2.0}
        "head_policy": "reuse",
        "freeze": None,  # shortcuts for the most common options: freeze=[convs.0.*] (strategy=freeze),
        "rank": None,  # rank=8 (strategy=lora),
        "n_samples": None,  # n_samples=8 (strategy=group_average over a continuous group)
        "regularizers": [],
        "mixed": False,
        "constrained": None,
        "groups": ["so3", "perm"],
        "epochs": 10,
        "lr": 1e-3,
        "batch_size": 32,
        "seed": 0,
        "early_stopping": None,
        "patience": 10,
        "smiles_column": None,
        "target_columns": None,
        "task": None,  # for data=<file.csv>; or task=potential: energies and forces (data with energy, force)
        "energy_weight": 1.0,  # task=potential: loss weights of energies per atom and of forces
        "force_weight": 1.0,
        "trust_code": False,  # import the model class a checkpoint of a wrapped model names (a file you trust)
        "overwrite": False,
        "resume": False,
        "progress": True,
        "device": "auto",
        "precision": "32",
    },
    "evaluate": {
        "checkpoint": None,
        "model": None,
        "data": REQUIRED,
        "groups": "so3,perm",
        "split": "test",
        "limit": None,
        "samples": 8,
        "smiles_column": None,
        "target_columns": None,
        "json": False,
        "device": "auto",
        "trust_code": False,
    },
    "report": {"runs": REQUIRED},
    "bench": {"name": REQUIRED, "quick": False, "out": None},
    "datasets": {},
    "convert-checkpoint": {"source": REQUIRED, "out": REQUIRED, "trust_code": False},
}
HELP = {
    "pretrain": "train a backbone on a source dataset and write a run folder with model.pt",
    "adapt": "adapt a checkpoint (or a registered pretrained model, model=sevennet_0) to a target dataset with a "
    "strategy and equivariance regularizers; task=potential fits energies and forces",
    "evaluate": "print an equivariance report card (per group and per layer; forces too for energy models) of a "
    "checkpoint or a registered pretrained model on a dataset",
    "report": "compare run folders in one markdown table",
    "bench": "run a benchmark script from benchmarks/ (e.g. `bench equivariance_eval quick=true`)",
    "datasets": "list the dataset cards and whether their files are present",
    "convert-checkpoint": "rewrite a checkpoint of an earlier format that pickled Python objects as plain data; "
    "this unpickles (runs) the file: only for a file you trust, with trust_code=true",
}
WHOLE_NUMBERS = ("epochs", "batch_size", "limit", "samples", "patience")  # each >= 1 when set
TASKS = ("regression", "classification", "potential")
POTENTIAL_DATA = "md17_<molecule> (a dataset card) or mmff_<set> (MMFF94-labelled rdkit conformers, e.g. mmff_nci)"
CSV_KEYS = ("smiles_column", "target_columns", "task")  # only with data=<file.csv>


class ConfigError(ValueError):
    """A problem with the command's configuration (reported as one line)."""


def _coerce(key: str, value: Any, default: Any, shown: str) -> Any:
    """``value`` checked against the type of ``default`` (ints widen to floats; a string splits into a list)."""
    if default is REQUIRED or default is None or value is None:
        return value
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is list and isinstance(value, str):
        return [v for v in value.split(",") if v]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"{shown}: expected {expected.__name__}, got {type(value).__name__} {value!r}")
    return value


def _parse_value(key: str, raw: str, default: Any) -> Any:
    if raw == "":
        if default is REQUIRED or default is None:
            return None
        raise ConfigError(f"override {key}=: expected {type(default).__name__}, got an empty value")
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        problem = _yaml_problem(err)
        raise ConfigError(f"override {key}={raw}: expected a YAML value, got a syntax error ({problem})") from None
    if key == "target_columns" and isinstance(value, str):
        value = [v for v in value.split(",") if v]
    if key == "precision" and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if key == "groups" and isinstance(default, str) and isinstance(value, list):  # groups=[se3,o3] as a list too
        value = ",".join(str(v) for v in value)
    return _coerce(key, value, default, f"override {key}={raw}")


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + str(getattr(err, "problem", None) or err).splitlines()[0]


def _validate(config: dict[str, Any]) -> None:
    for key in WHOLE_NUMBERS:
        value = config.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ConfigError(f"{key}: expected a whole number >= 1, got {value!r}")
    if "lr" in config and not (isinstance(config["lr"], (int, float)) and config["lr"] > 0):
        raise ConfigError(f"lr: expected a learning rate > 0, got {config['lr']!r}")
    if "groups" in config and not config["groups"]:
        raise ConfigError(f"groups: expected at least one group name (e.g. groups=so3,perm), got {config['groups']!r}")
    if config.get("task") is not None and config["task"] not in TASKS:
        raise ConfigError(f"task: expected one of {list(TASKS)}, got {config['task']!r}")
    if isinstance(config.get("target_columns"), str):
        config["target_columns"] = [config["target_columns"]]
    if "device" in config:
        from geoadapt.devices import resolve_device, resolve_precision

        try:
            device = resolve_device(config["device"])
            if "precision" in config:
                resolve_precision(config["precision"], device)
        except ValueError as err:
            raise ConfigError(str(err)) from None
    if "model" in config and (config.get("model") is None) == (config.get("checkpoint") is None):
        raise ConfigError(
            "checkpoint, model: expected exactly one (checkpoint=run/model.pt or model=<registered name>), got "
            + ("both" if config.get("model") is not None else "neither")
        )


def resolve(command: str, config_path: str | None, overrides: list[str]) -> dict[str, Any]:
    """Defaults < config file < ``key=value`` overrides; unknown and missing keys and bad values are errors."""
    defaults = DEFAULTS[command]
    config: dict[str, Any] = {k: v for k, v in defaults.items() if v is not REQUIRED}
    if config_path:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"config: file {path} not found")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"config {path}: expected YAML, got a syntax error at {_yaml_problem(err)}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path}: expected a mapping of keys to values, got {type(loaded).__name__}")
        for key, value in loaded.items():
            if key == "precision" and isinstance(value, int) and not isinstance(value, bool):
                value = str(value)  # precision: 32 in YAML is a number
            config[key] = _coerce(key, value, defaults.get(key), f"config {path}: {key}")
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value")
        key, raw = item.split("=", 1)
        if key not in defaults:
            raise ConfigError(f"override {key}: expected one of {sorted(defaults)}, got unknown key {key!r}")
        config[key] = _parse_value(key, raw, defaults[key])
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ConfigError(f"config: expected keys among {sorted(defaults)}, got unknown {unknown}")
    missing = [k for k, v in defaults.items() if v is REQUIRED and config.get(k) is None]
    if missing:
        raise ConfigError(f"config: missing required key {missing[0]!r} (set it in --config or as {missing[0]}=...)")
    _validate(config)
    return config


# --- data and models ------------------------------------------------------------------------------
def dataset_card(config: dict[str, Any]) -> dict[str, Any]:
    """The card of ``data=``: a card name, or a CSV of molecules read with ``smiles_column`` / ``target_columns``."""
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
        if "task" in config and config["task"] is None:  # evaluate reads the task from the checkpoint
            raise ConfigError(f"task: expected one of {list(TASKS)} for the CSV file {data}, got none")
        task = config.get("task") or "regression"
        return csv_card(path, config.get("smiles_column") or "smiles", config["target_columns"], task)
    given = [k for k in CSV_KEYS if config.get(k) is not None]
    if given:
        raise ConfigError(
            f"{given[0]}: only used with data=<file.csv>, got the dataset card {data!r} (its card sets it)"
        )
    return read_card(data)


def model_from_config(config: dict[str, Any]):
    """The model of ``checkpoint=`` (loaded) or ``model=`` (a registered pretrained model, built)."""
    import torch

    from geoadapt.models import available, build, load

    if config.get("checkpoint") is not None:
        return load(config["checkpoint"], trust_code=bool(config.get("trust_code", False)))
    if config["model"] not in available():
        raise ConfigError(f"model: expected a registered model name among {available()}, got {config['model']!r}")
    # An architecture without pretrained weights starts from a random init: the run's seed makes it the same
    # in every process (and so a resumed run the same as an uninterrupted one).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.get("seed", 0))
        model = build(config["model"])
    model.checkpoint = {"dataset": None, "extra": {}}
    return model


def _model_label(config: dict[str, Any], model) -> str:
    if config.get("checkpoint") is not None:
        return f"checkpoint {config['checkpoint']} ({model.arch}, trained on {(model.checkpoint or {}).get('dataset')})"
    return f"model {config['model']}"


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


def potential_split(dataset, seed: int = 0, val_fraction: float = 0.2) -> tuple[list, list]:
    """Training and validation graphs: whole molecules (``mol_id``) on one side when the set has several."""
    import torch

    graphs = list(dataset.graphs)
    groups = [int(g.mol_id) if getattr(g, "mol_id", None) is not None else i for i, g in enumerate(graphs)]
    keys = sorted(set(groups))
    order = torch.randperm(len(keys), generator=torch.Generator().manual_seed(seed)).tolist()
    held = {keys[i] for i in order[: max(1, round(val_fraction * len(keys)))]}
    train = [g for g, k in zip(graphs, groups) if k not in held]
    val = [g for g, k in zip(graphs, groups) if k in held]
    if not train or not val:
        raise ConfigError(
            f"data {config_name(dataset)}: expected graphs for training and validation, got {len(graphs)}"
        )
    return train, val


def config_name(dataset) -> str:
    return getattr(dataset, "name", type(dataset).__name__)


def _csv_header(path: Path) -> list[str]:
    import csv

    with path.open(newline="") as handle:
        header = next(csv.reader(handle), None)
    if not header:
        raise ConfigError(f"data {path}: expected a header line and rows of data, got an empty file")
    return header


def _loaders(card: dict[str, Any], config: dict[str, Any]):
    """Train and validation loaders, and the rows dropped when loading (printed here)."""
    from geoadapt.data import load
    from geoadapt.train.pretrain import loader_for

    molecules = card["kind"] in ("molecules_csv", "rdkit")
    if config["limit"] is not None and not molecules:
        raise ConfigError(f"limit: only molecule sets take a limit, got limit={config['limit']} for {card['name']}")
    options = {"limit": config["limit"], "progress": config["progress"]} if molecules else {}
    train = load(card, split="train", **options)
    val = load(card, split="val", **options)
    for name, part in (("train", train), ("val", val)):
        if len(part) == 0:
            raise ConfigError(f"data {config['data']}: expected rows in the {name} split, got none (too few rows)")
    dropped = train.dropped_counts() if hasattr(train, "dropped_counts") else None
    line = train.dropped_line() if hasattr(train, "dropped_line") else None
    if line:
        print(line)
    return loader_for(train, config["batch_size"], True), loader_for(val, 256, False), dropped


def _describe(inputs: Any) -> str:
    from geoadapt.structure import is_graph

    if is_graph(inputs):
        return "graphs with fields " + ", ".join(k for k in ("x", "pos", "edge_attr") if inputs.get(k) is not None)
    return f"tensors of shape {tuple(getattr(inputs, 'shape', ()))}"


def _check_model_reads(model, loader, what: str, hint: str) -> None:
    """One forward on one batch (eval mode, no gradients): a model that cannot read the data fails here, in one line."""
    import torch
    from e3nn import o3

    from geoadapt.devices import to_device
    from geoadapt.structure import is_graph
    from geoadapt.train.targets import split_batch

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    inputs = to_device(split_batch(next(iter(loader)))[0], device)
    if is_graph(inputs):
        for field, irreps in model.spec.fields.items():
            value = inputs.get(field)
            if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[-1] != o3.Irreps(irreps).dim:
                raise ConfigError(
                    f"{what}: the data's field {field!r} has {value.shape[-1]} columns, the model expects "
                    f"{o3.Irreps(irreps).dim} ({irreps}){hint}"
                )
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(inputs)
    except (RuntimeError, TypeError, AttributeError, IndexError, KeyError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{what}: the model cannot read {_describe(inputs)} ({first}){hint}") from err
    finally:
        model.train(was_training)


def _model_config_from_data(name: str, config: dict[str, Any], card: dict[str, Any], loader) -> dict[str, Any]:
    """Input (and class-count) sizes of model ``name`` read from the data, for keys the user did not set."""
    from geoadapt.models import build
    from geoadapt.structure import is_graph
    from geoadapt.train.targets import split_batch

    defaults = build(name).config
    inputs, y = split_batch(next(iter(loader)))
    sizes: dict[str, Any] = {}
    if is_graph(inputs):
        if inputs.get("x") is not None:
            sizes["in_dim"] = int(inputs.x.shape[-1])
        sizes["edge_dim"] = int(inputs.edge_attr.shape[-1]) if inputs.get("edge_attr") is not None else 0
    elif getattr(inputs, "dim", lambda: 0)() == 4:
        sizes["in_channels"] = int(inputs.shape[1])
    classes = card.get("num_classes") if card["task"] == "classification" else None
    outputs = classes if classes and classes > 2 else None
    if (
        card["task"] == "regression"
        and y.dim() == 2
        and y.shape[-1] > 1
        and y.shape[0] == getattr(inputs, "num_graphs", -1)
    ):
        outputs = int(y.shape[-1])
    if outputs:
        sizes.update({"out_dim": outputs, "num_classes": outputs, "output": f"{outputs}x0e"})
    return {k: v for k, v in sizes.items() if k in defaults and k not in config["model_config"] and defaults[k] != v}


def _finish_run(folder: Path, trainer, model, val_loader, config: dict, extra: dict[str, Any]) -> dict[str, Any]:
    # The potential task's curve is the forces' (node-level 1o), relative to their own spread.
    potential_task = trainer.task == "potential"
    import torch

    from geoadapt.devices import to_device
    from geoadapt.metrics import error_vs_angle
    from geoadapt.models import save
    from geoadapt.runs import plot_history, write_summary
    from geoadapt.structure import concat

    metrics = trainer.evaluate(val_loader)
    angles = torch.linspace(0, math.pi, 13)[1:]  # 0 degrees is exact by definition
    sample = concat([b for b, _ in zip(val_loader, range(2))]) if not hasattr(val_loader.dataset, "images") else None
    if sample is not None and not (
        trainer.spec.positions and all(sample.get(p) is not None for p in trainer.spec.positions)
    ):
        sample = None  # nothing in the data rotates: the curve would be zero by construction
    # The headline error's definition: predictions in target units, relative to the targets' spread.
    scale = None if potential_task else trainer.equivariance_scale()
    predictor = trainer.output_view(trainer.model).eval() if potential_task else trainer.predictor()
    errors = (
        error_vs_angle(predictor, to_device(sample, trainer.device), trainer.output_spec, angles, scale).tolist()
        if sample is not None
        else None
    )
    name = Path(config["out"]).name
    plot_history(folder, trainer.history, angles.tolist() if errors else None, errors, title=name)
    summary = {"run": name, **extra, **{f"val_{k}": v for k, v in metrics.items()}, "epochs": len(trainer.history)}
    if errors:
        summary["error_vs_angle"] = dict(zip([round(math.degrees(a)) for a in angles.tolist()], errors))
    save(
        model,
        folder / "model.pt",
        normalization=trainer.normalization,
        dataset=str(config["data"]),
        metrics={k: v for k, v in summary.items() if isinstance(v, float)},
        extra={"task": trainer.task, "augment": config.get("augment")},
    )
    write_summary(folder, summary)  # last: a run folder with summary.json is complete
    return summary


def _resume_note(config: dict[str, Any]) -> None:
    from geoadapt.runs import partial_folder

    if config["resume"] and not (partial_folder(config["out"]) / "last.pt").is_file():
        print(f"resume: no interrupted run in {partial_folder(config['out'])}; starting from the first epoch")


# --- commands -------------------------------------------------------------------------------------
def cmd_pretrain(config: dict[str, Any]) -> None:
    import torch

    from geoadapt.groups import group_from_name
    from geoadapt.models import build
    from geoadapt.runs import run_folder
    from geoadapt.train import Trainer

    card = dataset_card(config)
    augment = group_from_name(config["augment"]) if config["augment"] else None
    _resume_note(config)
    with run_folder(config["out"], config["overwrite"], config["resume"], config) as folder:
        train, val, dropped = _loaders(card, config)
        inferred = _model_config_from_data(config["model"], config, card, val)
        if inferred:
            shown = ", ".join(f"{k}={v!r}" for k, v in inferred.items())
            print(f"model_config from the data: {shown} (set model_config to choose)")
        model_config = {**inferred, **config["model_config"]}
        torch.manual_seed(config["seed"])
        model = build(config["model"], **model_config)
        keys = {"x": "in_dim", "edge_attr": "edge_dim"}
        _check_model_reads(
            model,
            val,
            f"model {config['model']} on data {config['data']}",
            f"; set model_config ({', '.join(f'{k} for {f}' for f, k in keys.items() if k in model.config)})"
            if any(k in model.config for k in keys.values())
            else f"; model_config keys: {sorted(model.config)}",
        )
        trainer = Trainer(
            model,
            card["task"],
            strategy="augment" if augment else None,
            groups=[augment] if augment else None,
            max_epochs=config["epochs"],
            lr=config["lr"],
            seed=config["seed"],
            run_dir=folder,
            resume=config["resume"],
            progress=config["progress"],
            device=config["device"],
            precision=config["precision"],
        )
        trainer.fit(train, val)
        summary = _finish_run(
            folder,
            trainer,
            model,
            val,
            config,
            {"command": "pretrain", "model": config["model"], "data": str(config["data"]), "dropped": dropped},
        )
    headline = _headline(summary, trainer.task)
    print(f"pretrained {config['model']} on {config['data']}: {headline}; run folder {config['out']}")


def _regularizers(config: dict[str, Any], spec: Spec) -> list[torch.nn.Module]:
    """The regularizers ``config`` asks for (``regularizers``, wrapped by ``constrained`` or ``mixed``)."""
    from geoadapt.groups import group_from_name
    from geoadapt.regularizers import (
        ConstrainedEquivarianceRegularizer,
        EquivarianceRegularizer,
        MixedEquivarianceRegularizer,
    )

    entries = config["regularizers"] or []
    if isinstance(entries, (str, dict)):
        entries = [entries]
    if (config["constrained"] or config["mixed"]) and not entries:
        asked = "constrained" if config["constrained"] else "mixed"
        raise ConfigError(f"{asked}: expected at least one entry in regularizers (e.g. regularizers=[so3]), got none")
    if config["constrained"] and config["mixed"]:
        raise ConfigError("constrained: expected either constrained or mixed=true, got both")
    terms = []
    for entry in entries:
        entry = {"group": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or "group" not in entry:
            raise ConfigError(f"regularizers: expected entries with a 'group' key, got {entry!r}")
        entry = dict(entry)
        group = group_from_name(entry.pop("group"))
        _known_options(entry, "regularizers", EquivarianceRegularizer, ("group", "spec", "name", "layers", "schedule"))
        entry = _numbers(entry, "regularizers", _numeric_options(EquivarianceRegularizer))
        terms.append(EquivarianceRegularizer(group, spec, name=repr(group), **entry))
    if config["mixed"]:
        return [MixedEquivarianceRegularizer(terms)]
    if config["constrained"]:
        if not isinstance(config["constrained"], dict):
            raise ConfigError(
                f"constrained: expected a mapping such as {{epsilon: 0.001}}, got {config['constrained']!r}"
            )
        options = dict(config["constrained"])
        _known_options(options, "constrained", ConstrainedEquivarianceRegularizer, ("regularizer", "name"))
        options = _numbers(options, "constrained", _numeric_options(ConstrainedEquivarianceRegularizer))
        if options.get("homotopy") is not None:
            homotopy = options["homotopy"]
            if not (isinstance(homotopy, (list, tuple)) and len(homotopy) == 2):
                raise ConfigError(f"constrained.homotopy: expected [epsilon_start, epochs], got {homotopy!r}")
            start = _numbers({"start": homotopy[0]}, "constrained.homotopy", {"start": (float, None)})["start"]
            options["homotopy"] = (start, homotopy[1])
        return [ConstrainedEquivarianceRegularizer(t, **options) for t in terms]
    return terms


def _known_options(options: dict[str, Any], field: str, cls: type, internal: tuple[str, ...]) -> None:
    """Refuse keys that ``cls`` does not take, naming the field, the keys it takes and the unknown ones."""
    known = sorted(p for p in inspect.signature(cls.__init__).parameters if p not in ("self", *internal))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ConfigError(f"{field}: expected keys among {known}, got unknown {unknown}")


def _numeric_options(cls: type) -> dict[str, tuple[type, str | None]]:
    """The options of ``cls`` annotated as a plain ``int`` or ``float``: name -> (that type, ``"auto"`` for those
    that also take text (``float | str``), else ``None``). The annotations are strings: geoadapt's modules use
    ``from __future__ import annotations``."""
    plain = re.compile(r"^(int|float)( \| (str|None))?$")
    found = {n: plain.match(str(p.annotation)) for n, p in inspect.signature(cls).parameters.items()}
    return {
        n: (int if m.group(1) == "int" else float, "auto" if m.group(3) == "str" else None)
        for n, m in found.items()
        if m
    }


def _numbers(options: dict[str, Any], field: str, kinds: dict[str, tuple[type, str | None]]) -> dict[str, Any]:
    """Numbers YAML reads as text (``1e-9`` is a string in YAML 1.1) become numbers of the option's type;
    anything else (or a fraction for an int option) is an error naming the option. ``kinds``: name -> (type,
    the one word the option also takes, or ``None``)."""
    for key, (kind, word) in kinds.items():
        value = options.get(key)
        if isinstance(value, str) and value != word:
            try:
                value = float(value)
            except ValueError:
                also = f" or {word!r}" if word else ""
                raise ConfigError(f"{field}.{key}: expected a number{also}, got {value!r}") from None
        if kind is int and isinstance(value, float):
            if not value.is_integer():
                raise ConfigError(f"{field}.{key}: expected a whole number, got {value!r}")
            value = int(value)
        if value is not None:
            options[key] = value
    return options


STRATEGY_SHORTCUTS = {"head_policy": "head_policy", "freeze": "patterns", "rank": "rank", "n_samples": "n_samples"}


def strategy_from_config(config: dict[str, Any], model, group):
    """Apply ``config["strategy"]`` with ``strategy_options`` plus the top-level shortcuts that are set."""
    from geoadapt.adapt import make_strategy

    options = config.get("strategy_options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"strategy_options: expected a mapping of option names to values, got {options!r}")
    options = dict(options)
    for key, option in STRATEGY_SHORTCUTS.items():
        value = config.get(key)
        if value is None or (option in options and value == DEFAULTS["adapt"][key]):
            continue  # unset, or left at its default beside an explicit strategy option
        if option in options and options[option] != value:
            raise ConfigError(f"{key}: expected it once, got {value!r} and strategy_options.{option}")
        options[option] = value
    try:
        return make_strategy(config["strategy"], model, model.spec, group, **options)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def cmd_adapt(config: dict[str, Any]) -> None:
    from geoadapt.groups import group_from_name
    from geoadapt.runs import run_folder
    from geoadapt.train import Trainer
    from geoadapt.train.potential import force_spec

    model = model_from_config(config)
    potential_task = config["task"] == "potential"
    card = {"task": "potential"} if potential_task else dataset_card(config)
    groups = [group_from_name(g) for g in config["groups"]]
    regularizers = _regularizers(config, force_spec(model.spec) if potential_task else model.spec)
    strategy = strategy_from_config(config, model, groups[0] if groups else None)
    for note in strategy.notes:
        print(note)
    _resume_note(config)
    with run_folder(config["out"], config["overwrite"], config["resume"], config) as folder:
        if potential_task:
            from geoadapt.train.pretrain import loader_for

            train_graphs, val_graphs = potential_split(potential_dataset(config), config["seed"])
            train, val = loader_for(train_graphs, config["batch_size"], True), loader_for(val_graphs, 64, False)
            dropped = None
        else:
            train, val, dropped = _loaders(card, config)
        _check_model_reads(model, val, f"{_model_label(config, model)} on data {config['data']}", "")
        trainer = Trainer(
            model,
            card["task"],
            regularizers,
            strategy=strategy,
            groups=groups,
            max_epochs=config["epochs"],
            lr=config["lr"],
            seed=config["seed"],
            run_dir=folder,
            early_stopping=config["early_stopping"],
            patience=config["patience"],
            resume=config["resume"],
            progress=config["progress"],
            device=config["device"],
            precision=config["precision"],
            **(
                {"energy_weight": config["energy_weight"], "force_weight": config["force_weight"]}
                if potential_task
                else {}
            ),
        )
        trainer.fit(train, val)
        extra = {
            "command": "adapt",
            "strategy": config["strategy"],
            "data": str(config["data"]),
            "checkpoint": str(config["checkpoint"] or config["model"]),
            "regularizers": [repr(r) for r in regularizers],
            "dropped": dropped,
        }
        for reg in regularizers:
            extra.update(reg.log())
        extra.update({"constraints": trainer.constraints, "warnings": trainer.warnings})
        summary = _finish_run(folder, trainer, strategy.model, val, config, extra)  # adapters and wrappers too
    from geoadapt.regularizers import constraint_verdict

    if potential_task:
        headline = (
            f"val energy MAE {summary['val_energy_mae']:.4g} meV/atom, force RMSE {summary['val_force_rmse']:.4g} eV/Å"
        )
    else:
        headline = _headline(summary, trainer.task)
    print(
        f"adapted on {config['data']} with {config['strategy']}"
        f"{' + ' + ', '.join(repr(r.name) for r in regularizers) if regularizers else ''}: {headline}, "
        f"equivariance error {summary.get('val_equivariance_error', math.nan):.3g}"
        f"{''.join('; ' + constraint_verdict(c) for c in trainer.constraints)}; run folder {config['out']}"
    )


def _headline(summary: dict[str, Any], task: str) -> str:
    """The validation metric a run is judged by: ``val rmse 0.912`` (regression) or ``val accuracy 0.85``."""
    metric = "accuracy" if task == "classification" else "rmse"
    if f"val_{metric}" not in summary:
        return "no validation data"
    return f"val {metric} {summary[f'val_{metric}']:.4g}"


def report_card(config: dict[str, Any]) -> dict[str, Any]:
    """Per group: relative error, score, absolute error per output block, consistency; per layer: feature error."""
    import torch

    from geoadapt.data import load as load_data
    from geoadapt.devices import resolve_device, to_device
    from geoadapt.groups import group_from_name
    from geoadapt.metrics import feature_errors, measure_equivariance
    from geoadapt.models.potential import Forces
    from geoadapt.spec import Spec
    from geoadapt.train.pretrain import loader_for
    from geoadapt.train.targets import Denormalized, target_scale

    device = resolve_device(config["device"])
    model = model_from_config(config).to(device)
    model.eval()
    normalization = getattr(model, "normalization", None)
    predictor = Denormalized(model, normalization).eval()  # errors in target units
    card = dataset_card(config)
    molecules = card["kind"] in ("molecules_csv", "rdkit")
    if config["limit"] is not None and not molecules:
        raise ConfigError(f"limit: only molecule sets take a limit, got limit={config['limit']} for {card['name']}")
    options = {"limit": config["limit"], "progress": False} if molecules else {}
    dataset = load_data(card, split=config["split"], **options)
    if len(dataset) == 0:
        raise ConfigError(f"data {config['data']}: expected rows in the {config['split']} split, got none")
    if getattr(dataset, "dropped_line", lambda: None)():
        print(dataset.dropped_line(), file=sys.stderr if config["json"] else sys.stdout)
    batches = [b for b, _ in zip(loader_for(dataset, 128, False), range(4))]
    _check_model_reads(model, batches, f"{_model_label(config, model)} on data {config['data']}", "")
    inputs = [to_device(b if not isinstance(b, (list, tuple)) else b[0], device) for b in batches]
    classifier = (model.checkpoint.get("extra") or {}).get("task") == "classification"
    layers = [n for n, m in model.named_modules() if n.count(".") == 1 and n.split(".")[0] in ("layers", "convs")]
    # An energy model evaluated on data with forces: its forces (node-level 1o) get their own rows.
    energy_model = model.spec.output == Spec(output="0e").output and model.spec.output_level == "graph"
    forces = Forces(model) if energy_model and all(getattr(b, "force", None) is not None for b in inputs) else None
    rows, force_rows = [], []
    for name in [g for g in config["groups"].split(",") if g]:
        group = group_from_name(name)
        if forces is not None:
            m = measure_equivariance(
                forces, inputs, group, forces.spec, config["samples"], torch.Generator().manual_seed(0)
            )
            force_rows.append(
                {
                    "group": m.group,
                    "error": m.error,
                    "max_error": m.max_error,
                    "score": m.score,
                    "absolute": m.absolute_by_block(),
                }
            )
        gen = torch.Generator().manual_seed(0)
        scale = None if classifier or normalization is None else target_scale(normalization, model.spec)
        m = measure_equivariance(
            predictor, inputs, group, model.spec, config["samples"], gen, scale, classifier=classifier
        )
        row = {
            "group": m.group,
            "error": m.error,
            "max_error": m.max_error,
            "score": m.score,
            "absolute": m.absolute_by_block(),
        }
        if classifier:
            row["consistency"] = m.consistency
        if layers:
            row["layers"] = feature_errors(
                model, inputs[0], group, model.spec, layers, 2, torch.Generator().manual_seed(0)
            )
        rows.append(row)
    card = {
        "checkpoint": str(config["checkpoint"] or config["model"]),
        "arch": model.arch,
        "data": config["data"],
        "split": config["split"],
        "graphs": sum(len(b) if isinstance(b, torch.Tensor) else b.num_graphs for b in inputs),
        "groups": rows,
    }
    if forces is not None:
        card["forces"] = force_rows
    return card


def cmd_evaluate(config: dict[str, Any]) -> None:
    from geoadapt.report import table

    card = report_card(config)
    if config["json"]:
        print(json.dumps(card, indent=2))
        return
    print(
        f"Equivariance report card: {card['arch']} from {card['checkpoint']} on {card['data']} "
        f"({card['split']}, {card['graphs']} samples)\n"
    )
    blocks = list(card["groups"][0]["absolute"])
    header = ["group", "relative error", "max relative", "score"] + [f"abs error {b}" for b in blocks]
    header += ["consistency"] if "consistency" in card["groups"][0] else []
    rows = [
        [g["group"], f"{g['error']:.2e}", f"{g['max_error']:.2e}", f"{g['score']:.4f}"]
        + [f"{g['absolute'][b]:.2e}" for b in blocks]
        + ([f"{g['consistency']:.3f}"] if "consistency" in g else [])
        for g in card["groups"]
    ]
    print(table(header, rows))
    if "forces" in card:
        print("\nForces (-dE/dpos, node-level 1o; relative to their spread, absolute in the model's units):\n")
        print(
            table(
                ["group", "relative error", "max relative", "score", "abs error 1x1o"],
                [
                    [
                        g["group"],
                        f"{g['error']:.2e}",
                        f"{g['max_error']:.2e}",
                        f"{g['score']:.4f}",
                        f"{g['absolute']['1x1o']:.2e}",
                    ]
                    for g in card["forces"]
                ],
            )
        )
    if "layers" in card["groups"][0]:
        layer_names = list(card["groups"][0]["layers"])
        print("\nPer layer (relative error of the features, irreps from the model):\n")
        print(
            table(
                ["group", *layer_names],
                [[g["group"], *[f"{g['layers'][n]:.2e}" for n in layer_names]] for g in card["groups"]],
            )
        )


def cmd_report(config: dict[str, Any]) -> None:
    from geoadapt.report import table

    runs = config["runs"] if isinstance(config["runs"], list) else str(config["runs"]).split(",")
    summaries = []
    for run in runs:
        path = Path(run) / "summary.json"
        if not path.is_file():
            raise ConfigError(f"run {run}: expected a finished run folder with summary.json, got none")
        summaries.append((run, json.loads(path.read_text())))
    keys = [
        k
        for k in (
            "val_rmse",
            "val_mae",
            "val_r2",
            "val_accuracy",
            "val_f1",
            "val_roc_auc",
            "val_equivariance_error",
            "val_equivariance_score",
            "val_consistency",
            "epochs",
        )
        if any(k in s for _, s in summaries)
    ]
    fmt = lambda v: "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    print(
        table(
            ["run", "command", "data", "strategy", *keys],
            [
                [r, s.get("command", "-"), s.get("data", "-"), s.get("strategy", "-"), *[fmt(s.get(k)) for k in keys]]
                for r, s in summaries
            ],
        )
    )


def cmd_bench(config: dict[str, Any]) -> None:
    import runpy

    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{config['name']}.py"
    if not script.parent.is_dir():
        raise ConfigError(
            f"bench: expected the benchmarks/ folder of a source checkout beside the package, got none in "
            f"{script.parents[1]} (the benchmark scripts ship with the repository, not the wheel)"
        )
    if not script.is_file():
        names = sorted(p.stem for p in script.parent.glob("[!_]*.py"))
        raise ConfigError(f"bench name: expected one of {names}, got {config['name']!r}")
    module = runpy.run_path(str(script))
    module["main"](["--quick"] * config["quick"] + (["--out", str(config["out"])] if config["out"] else []))


def cmd_datasets(config: dict[str, Any]) -> None:
    from geoadapt.data import card_names, files_present, read_card
    from geoadapt.data.cache import data_root
    from geoadapt.report import table

    rows = []
    for name in card_names():
        card = read_card(name)
        rows.append(
            [
                name,
                card["task"],
                card["metric"],
                card["expected_size"],
                "yes" if files_present(card) else "no",
                card["title"],
            ]
        )
    print(f"data root: {data_root()}\n")
    print(table(["name", "task", "metric", "size", "files present", "title"], rows))


def cmd_convert_checkpoint(config: dict[str, Any]) -> None:
    from geoadapt.models.checkpoint import convert_legacy

    if not config["trust_code"]:
        raise ConfigError(
            f"trust_code: expected true (converting unpickles {config['source']}, running any code it holds: "
            "do it only for a file you trust), got false"
        )
    print(f"wrote {convert_legacy(config['source'], config['out'])} (loads without running code)")


COMMANDS = {
    "convert-checkpoint": cmd_convert_checkpoint,
    "pretrain": cmd_pretrain,
    "adapt": cmd_adapt,
    "evaluate": cmd_evaluate,
    "report": cmd_report,
    "bench": cmd_bench,
    "datasets": cmd_datasets,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command each)."""
    from geoadapt import __version__

    parser = argparse.ArgumentParser(
        prog="geoadapt", description="Adapt pretrained geometric models without losing their symmetry."
    )
    parser.add_argument("--version", action="version", version=f"geoadapt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in HELP.items():
        keys = ", ".join(f"{k}{' (required)' if v is REQUIRED else f'={v!r}'}" for k, v in DEFAULTS[name].items())
        p = sub.add_parser(name, help=text, description=f"{text}. Keys: {keys or 'none'}.")
        p.add_argument("--config", help="YAML file with keys (overridden by key=value arguments)")
        p.add_argument("--debug", action="store_true", help="show the full traceback on error")
        if name == "evaluate":
            p.add_argument("--checkpoint", dest="opt_checkpoint")
            p.add_argument("--model", dest="opt_model")
            p.add_argument("--data", dest="opt_data")
            p.add_argument("--groups", dest="opt_groups")
            p.add_argument("--json", dest="opt_json", action="store_true")
        if name == "report":
            p.add_argument("runs", nargs="*", help="run folders (or key=value overrides)")
        elif name == "bench":
            p.add_argument("overrides", nargs="*", help="the benchmark's name, then key=value overrides")
        else:
            p.add_argument("overrides", nargs="*", help="key=value overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``geoadapt`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return _run(args, argv)
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's final flush
        return 0


def _resume_command(argv: list[str]) -> str:
    kept = [a for a in argv if not a.startswith("resume=")]
    return "geoadapt " + shlex.join([*kept, "resume=true"])


def _kept_run(args: argparse.Namespace, config: dict[str, Any] | None) -> tuple[Path, int] | None:
    """The partial folder of this command's run and its epochs done, when it holds a checkpoint to resume from."""
    from geoadapt.runs import partial_folder

    if config is None or args.command not in ("pretrain", "adapt"):
        return None
    last = partial_folder(config["out"]) / "last.pt"
    if not last.is_file():
        return None
    from geoadapt.serialization import safe_load

    try:
        state = safe_load(last, "resume state")
    except ValueError:  # a state it cannot read safely is nothing to resume from
        return None
    return last.parent, int(state["epoch"])


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from geoadapt.runs import RunFolderError

    overrides = list(getattr(args, "overrides", []) or [])
    if args.command == "report":
        runs = [r for r in args.runs if "=" not in r]
        overrides = [r for r in args.runs if "=" in r] + ([f"runs={','.join(runs)}"] if runs else [])
    if args.command == "bench" and overrides and "=" not in overrides[0]:
        overrides[0] = f"name={overrides[0]}"  # `geoadapt bench equivariance_eval quick=true`
    for key in ("checkpoint", "model", "data", "groups"):
        if getattr(args, f"opt_{key}", None):
            overrides.append(f"{key}={getattr(args, f'opt_{key}')}")
    if getattr(args, "opt_json", False):
        overrides.append("json=true")
    config = None
    try:
        config = resolve(args.command, args.config, overrides)
        COMMANDS[args.command](config)
    except KeyboardInterrupt:
        kept = _kept_run(args, config)
        if kept is None:
            print(f"geoadapt {args.command}: interrupted; nothing to resume was kept", file=sys.stderr)
        else:
            print(
                f"geoadapt {args.command}: interrupted after {kept[1]} epoch(s); the run so far is kept in {kept[0]}; "
                f"resume with: {_resume_command(argv)}",
                file=sys.stderr,
            )
        return 130
    except (ConfigError, ValueError, OSError, TypeError, KeyError, FloatingPointError) as err:
        if args.debug:
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        kept = None if isinstance(err, RunFolderError) else _kept_run(args, config)
        if kept is not None:
            message += f"; the run so far is kept in {kept[0]} (resume with: {_resume_command(argv)})"
        print(f"geoadapt {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
