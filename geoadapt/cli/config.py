"""A command's configuration: defaults < ``--config`` YAML file < ``key=value`` overrides, checked in one line.

Values of overrides are parsed as YAML and checked against the type of the key's default (:mod:`.keys`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from geoadapt.cli.keys import DEFAULTS, REQUIRED, WHOLE_NUMBERS
from geoadapt.errors import ConfigError

__all__ = ["ConfigError", "resolve"]


def _coerce(value: Any, default: Any, shown: str) -> Any:
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
    return _coerce(value, default, f"override {key}={raw}")


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
    if config.get("task") is not None:
        from geoadapt.tasks import task_names

        if config["task"] not in task_names():
            raise ConfigError(f"task: expected one of {list(task_names())}, got {config['task']!r}")
    if "task_options" in config and not isinstance(config["task_options"], dict):
        raise ConfigError(f"task_options: expected a mapping of option names to values, got {config['task_options']!r}")
    from geoadapt.cli.potential_data import check_keys

    check_keys(config)
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


def _read_file(config_path: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """The keys of a ``--config`` YAML file, each checked against its default's type."""
    path = Path(config_path)
    if not path.is_file():
        raise ConfigError(f"config: file {path} not found")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"config {path}: expected YAML, got a syntax error at {_yaml_problem(err)}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"config {path}: expected a mapping of keys to values, got {type(loaded).__name__}")
    config = {}
    for key, value in loaded.items():
        if key == "precision" and isinstance(value, int) and not isinstance(value, bool):
            value = str(value)  # precision: 32 in YAML is a number
        config[key] = _coerce(value, defaults.get(key), f"config {path}: {key}")
    return config


def resolve(command: str, config_path: str | None, overrides: list[str]) -> dict[str, Any]:
    """Defaults < config file < ``key=value`` overrides; unknown and missing keys and bad values are errors."""
    defaults = DEFAULTS[command]
    config: dict[str, Any] = {k: v for k, v in defaults.items() if v is not REQUIRED}
    if config_path:
        config.update(_read_file(config_path, defaults))
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
