"""``geoadapt report``: finished run folders side by side in one markdown table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from geoadapt.errors import ConfigError

# summary keys shown, in this order, when any run has them
COLUMNS = (
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


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def run(config: dict[str, Any]) -> None:
    """Print one row per run folder: command, data, strategy and the validation metrics of its ``summary.json``."""
    from geoadapt.report import table

    runs = config["runs"] if isinstance(config["runs"], list) else str(config["runs"]).split(",")
    summaries = []
    for folder in runs:
        path = Path(folder) / "summary.json"
        if not path.is_file():
            raise ConfigError(f"run {folder}: expected a finished run folder with summary.json, got none")
        summaries.append((folder, json.loads(path.read_text())))
    keys = [k for k in COLUMNS if any(k in s for _, s in summaries)]
    rows = [
        [r, s.get("command", "-"), s.get("data", "-"), s.get("strategy", "-"), *[_cell(s.get(k)) for k in keys]]
        for r, s in summaries
    ]
    print(table(["run", "command", "data", "strategy", *keys], rows))
