"""``geoadapt`` command line: pretrain, adapt, evaluate, report, bench, datasets.

Every command takes ``--config file.yaml`` and ``key=value`` overrides (values parsed as YAML, and
checked against the type of the default). Errors print one line and exit 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import yaml

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
        "overwrite": False,
        "progress": True,
    },
    "adapt": {
        "checkpoint": REQUIRED,
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
        "overwrite": False,
        "progress": True,
    },
    "evaluate": {
        "checkpoint": REQUIRED,
        "data": REQUIRED,
        "groups": "so3,perm",
        "split": "test",
        "limit": None,
        "samples": 8,
        "json": False,
    },
    "report": {"runs": REQUIRED},
    "bench": {"name": REQUIRED, "quick": False},
    "datasets": {},
}
HELP = {
    "pretrain": "train a backbone on a source dataset and write a run folder with model.pt",
    "adapt": "adapt a checkpoint to a target dataset with a strategy and equivariance regularizers",
    "evaluate": "print an equivariance report card (per group and per layer) of a checkpoint on a dataset",
    "report": "compare run folders in one markdown table",
    "bench": "run a benchmark script from benchmarks/ (e.g. equivariance_eval, regularizer_overhead)",
    "datasets": "list the dataset cards and whether their files are present",
}


class ConfigError(ValueError):
    """A problem with the command's configuration (reported as one line)."""


def _parse_value(key: str, raw: str, default: Any) -> Any:
    value = yaml.safe_load(raw) if raw != "" else None
    if default is REQUIRED or default is None or value is None:
        return value
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is list and isinstance(value, str):
        return [v for v in value.split(",") if v]
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise ConfigError(f"override {key}={raw}: expected {expected.__name__}, got {type(value).__name__} {value!r}")
    return value


def resolve(command: str, config_path: str | None, overrides: list[str]) -> dict[str, Any]:
    """Defaults < config file < ``key=value`` overrides; unknown and missing keys are errors."""
    defaults = DEFAULTS[command]
    config: dict[str, Any] = {k: v for k, v in defaults.items() if v is not REQUIRED}
    if config_path:
        path = Path(config_path)
        if not path.is_file():
            raise ConfigError(f"config: file {path} not found")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {path}: expected a mapping of keys to values, got {type(loaded).__name__}")
        config.update(loaded)
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
    return config


# --- commands -------------------------------------------------------------------------------------
def _loaders(data: str, limit: int | None, batch_size: int, progress: bool):
    from geoadapt.data import load, read_card
    from geoadapt.train.pretrain import loader_for

    card = read_card(data)
    options = {"limit": limit, "progress": progress} if card["kind"] in ("molecules_csv", "rdkit") else {}
    train = load(data, split="train", **options)
    val = load(data, split="val", **options)
    return card, loader_for(train, batch_size, True), loader_for(val, 256, False)


def _finish_run(folder: Path, trainer, model, val_loader, config: dict, extra: dict[str, Any]) -> dict[str, Any]:
    import torch

    from geoadapt.metrics import error_vs_angle
    from geoadapt.models import save
    from geoadapt.runs import plot_history, write_config, write_summary
    from geoadapt.structure import concat

    metrics = trainer.evaluate(val_loader)
    angles = torch.linspace(0, math.pi, 13)[1:]  # 0 degrees is exact by definition
    sample = concat([b for b, _ in zip(val_loader, range(2))]) if not hasattr(val_loader.dataset, "images") else None
    errors = error_vs_angle(trainer.model, sample, trainer.spec, angles).tolist() if sample is not None else None
    write_config(folder, config)
    plot_history(folder, trainer.history, angles.tolist() if errors else None, errors)
    (folder / "last.pt").unlink(missing_ok=True)  # the resumable state is not needed once the run succeeded
    summary = {**extra, **{f"val_{k}": v for k, v in metrics.items()}, "epochs": len(trainer.history)}
    if errors:
        summary["error_vs_angle"] = dict(zip([round(math.degrees(a)) for a in angles.tolist()], errors))
    save(
        model,
        folder / "model.pt",
        normalization=trainer.normalization,
        dataset=config["data"],
        metrics={k: v for k, v in summary.items() if isinstance(v, float)},
        extra={"task": trainer.task, "augment": config.get("augment")},
    )
    write_summary(folder, summary)  # last: a run folder with summary.json is complete
    return summary


def cmd_pretrain(config: dict[str, Any]) -> None:
    import torch

    from geoadapt.groups import group_from_name
    from geoadapt.models import build
    from geoadapt.runs import run_folder
    from geoadapt.train import Trainer

    card, train, val = _loaders(config["data"], config["limit"], config["batch_size"], config["progress"])
    torch.manual_seed(config["seed"])
    model = build(config["model"], **config["model_config"])
    augment = group_from_name(config["augment"]) if config["augment"] else None
    with run_folder(config["out"], config["overwrite"]) as folder:
        trainer = Trainer(
            model,
            card["task"],
            strategy="augment" if augment else None,
            groups=[augment] if augment else ["so3"],
            max_epochs=config["epochs"],
            lr=config["lr"],
            seed=config["seed"],
            run_dir=folder,
            progress=config["progress"],
        )
        trainer.fit(train, val)
        summary = _finish_run(
            folder,
            trainer,
            model,
            val,
            config,
            {"command": "pretrain", "model": config["model"], "data": config["data"]},
        )
    print(
        f"pretrained {config['model']} on {config['data']}: val rmse/accuracy "
        f"{summary.get('val_rmse', summary.get('val_accuracy')):.4g}; run folder {config['out']}"
    )


def _regularizers(config: dict[str, Any], spec) -> list:
    from geoadapt.groups import group_from_name
    from geoadapt.regularizers import (
        ConstrainedEquivarianceRegularizer,
        EquivarianceRegularizer,
        MixedEquivarianceRegularizer,
    )

    terms = []
    for entry in config["regularizers"]:
        entry = {"group": entry} if isinstance(entry, str) else dict(entry)
        if "group" not in entry:
            raise ConfigError(f"regularizers: expected entries with a 'group' key, got {entry}")
        group = group_from_name(entry.pop("group"))
        terms.append(EquivarianceRegularizer(group, spec, name=repr(group), **entry))
    if not terms:
        return []
    if config["mixed"]:
        return [MixedEquivarianceRegularizer(terms)]
    if config["constrained"]:
        options = dict(config["constrained"])
        if "homotopy" in options and options["homotopy"] is not None:
            options["homotopy"] = tuple(options["homotopy"])
        return [ConstrainedEquivarianceRegularizer(t, **options) for t in terms]
    return terms


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
    from geoadapt.models import load
    from geoadapt.runs import run_folder
    from geoadapt.train import Trainer

    model = load(config["checkpoint"])
    card, train, val = _loaders(config["data"], config["limit"], config["batch_size"], config["progress"])
    groups = [group_from_name(g) for g in config["groups"]]
    regularizers = _regularizers(config, model.spec)
    strategy = strategy_from_config(config, model, groups[0] if groups else None)
    for note in strategy.notes:
        print(note)
    model.normalization = None  # the target task gets its own standardization
    with run_folder(config["out"], config["overwrite"]) as folder:
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
            progress=config["progress"],
        )
        trainer.fit(train, val)
        extra = {
            "command": "adapt",
            "strategy": config["strategy"],
            "data": config["data"],
            "checkpoint": str(config["checkpoint"]),
            "regularizers": [repr(r) for r in regularizers],
        }
        for reg in regularizers:
            extra.update(reg.log())
        summary = _finish_run(folder, trainer, strategy.model, val, config, extra)  # adapters and wrappers too
    print(
        f"adapted on {config['data']} with {config['strategy']}"
        f"{' + ' + ', '.join(repr(r.name) for r in regularizers) if regularizers else ''}: "
        f"val rmse/accuracy {summary.get('val_rmse', summary.get('val_accuracy')):.4g}, "
        f"equivariance error {summary.get('val_equivariance_error', math.nan):.3g}; run folder {config['out']}"
    )


def report_card(config: dict[str, Any]) -> dict[str, Any]:
    """Per group: relative error, score, absolute error per output block, consistency; per layer: feature error."""
    import torch

    from geoadapt.data import load as load_data
    from geoadapt.data import read_card
    from geoadapt.groups import group_from_name
    from geoadapt.metrics import feature_errors, measure_equivariance
    from geoadapt.models import load
    from geoadapt.train.pretrain import loader_for
    from geoadapt.train.targets import Denormalized, target_scale

    model = load(config["checkpoint"])
    model.eval()
    predictor = Denormalized(model, model.normalization).eval()  # errors in target units
    card = read_card(config["data"])
    options = {"limit": config["limit"], "progress": False} if card["kind"] in ("molecules_csv", "rdkit") else {}
    dataset = load_data(config["data"], split=config["split"], **options)
    batches = [b for b, _ in zip(loader_for(dataset, 128, False), range(4))]
    inputs = [b if not isinstance(b, (list, tuple)) else b[0] for b in batches]
    classifier = (model.checkpoint.get("extra") or {}).get("task") == "classification"
    layers = [n for n, m in model.named_modules() if n.count(".") == 1 and n.split(".")[0] in ("layers", "convs")]
    rows = []
    for name in [g for g in config["groups"].split(",") if g]:
        group = group_from_name(name)
        gen = torch.Generator().manual_seed(0)
        scale = None if classifier else target_scale(model.normalization, model.spec)
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
    return {
        "checkpoint": str(config["checkpoint"]),
        "arch": model.arch,
        "data": config["data"],
        "split": config["split"],
        "graphs": sum(len(b) if isinstance(b, torch.Tensor) else b.num_graphs for b in inputs),
        "groups": rows,
    }


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
            ["run", "command", *keys],
            [[r, s.get("command", "-"), *[fmt(s.get(k)) for k in keys]] for r, s in summaries],
        )
    )


def cmd_bench(config: dict[str, Any]) -> None:
    import runpy

    script = Path(__file__).resolve().parents[1] / "benchmarks" / f"{config['name']}.py"
    if not script.is_file():
        names = sorted(p.stem for p in script.parent.glob("[!_]*.py"))
        raise ConfigError(f"bench name: expected one of {names}, got {config['name']!r}")
    module = runpy.run_path(str(script))
    module["main"](["--quick"] if config["quick"] else [])


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


COMMANDS = {
    "pretrain": cmd_pretrain,
    "adapt": cmd_adapt,
    "evaluate": cmd_evaluate,
    "report": cmd_report,
    "bench": cmd_bench,
    "datasets": cmd_datasets,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command each)."""
    parser = argparse.ArgumentParser(
        prog="geoadapt", description="Adapt pretrained geometric models without losing their symmetry."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in HELP.items():
        keys = ", ".join(f"{k}{' (required)' if v is REQUIRED else f'={v!r}'}" for k, v in DEFAULTS[name].items())
        p = sub.add_parser(name, help=text, description=f"{text}. Keys: {keys or 'none'}.")
        p.add_argument("--config", help="YAML file with keys (overridden by key=value arguments)")
        p.add_argument("--debug", action="store_true", help="show the full traceback on error")
        if name == "evaluate":
            p.add_argument("--checkpoint", dest="opt_checkpoint")
            p.add_argument("--data", dest="opt_data")
            p.add_argument("--groups", dest="opt_groups")
            p.add_argument("--json", dest="opt_json", action="store_true")
        if name == "report":
            p.add_argument("runs", nargs="*", help="run folders (or key=value overrides)")
        else:
            p.add_argument("overrides", nargs="*", help="key=value overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``geoadapt`` command."""
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's final flush
        return 0


def _run(args: argparse.Namespace) -> int:
    overrides = list(getattr(args, "overrides", []) or [])
    if args.command == "report":
        runs = [r for r in args.runs if "=" not in r]
        overrides = [r for r in args.runs if "=" in r] + ([f"runs={','.join(runs)}"] if runs else [])
    for key in ("checkpoint", "data", "groups"):
        if getattr(args, f"opt_{key}", None):
            overrides.append(f"{key}={getattr(args, f'opt_{key}')}")
    if getattr(args, "opt_json", False):
        overrides.append("json=true")
    try:
        config = resolve(args.command, args.config, overrides)
        COMMANDS[args.command](config)
    except (ConfigError, ValueError, FileNotFoundError, TypeError, KeyError) as err:
        if args.debug:
            raise
        message = str(err).splitlines()[0] if str(err) else type(err).__name__
        print(f"geoadapt {args.command}: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
