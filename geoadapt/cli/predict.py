"""``geoadapt predict``: a checkpoint's (or a registered model's) predictions on new inputs, in target units, streamed
into a CSV file chunk by chunk (:func:`geoadapt.prediction.predict_to_csv`); resumable after an interruption."""

from __future__ import annotations

from typing import Any

# Keys that do not change what is written: a run resumed with other values of them goes on as it was.
NOT_IN_FINGERPRINT = ("resume", "overwrite", "progress", "workers", "device", "trust_code")


SHOWN_METRICS = 3  # metrics said in the last line (the task's headline metric first)


def _headline(metrics: dict[str, float], task: str) -> str:
    from geoadapt.tasks import TASKS

    if not metrics:
        return ""
    first = getattr(TASKS.get(task), "headline_metric", None)
    names = [first] if first in metrics else []
    names += [n for n in metrics if n not in (first, "rows")][: SHOWN_METRICS - len(names)]
    shown = ", ".join(f"{n} {metrics[n]:.4g}" for n in names)
    return f"; against the targets ({metrics['rows']} rows): {shown}"


def run(config: dict[str, Any]) -> None:
    """Predict ``data`` into ``out``; the last line says how many rows were predicted and failed, and the metrics."""
    from geoadapt.cli.models import model_from_config
    from geoadapt.devices import resolve_device
    from geoadapt.prediction import predict_to_csv

    model = model_from_config(config).to(resolve_device(config["device"]))
    fingerprint = {k: v for k, v in config.items() if k not in NOT_IN_FINGERPRINT}
    options = {k: config[k] for k in ("task", "smiles_column", "target_columns", "id_column", "split", "limit")}
    options.update({k: config[k] for k in ("with_equivariance", "symmetrize", "group", "samples", "seed")})
    options.update({k: config[k] for k in ("batch_size", "chunk_size", "workers", "progress")})
    summary = predict_to_csv(
        model, config["data"], config["out"], config["forces"], config["overwrite"], config["resume"], fingerprint,
        **options,
    )  # fmt: skip
    failed = summary["failed"]
    where = f" (listed in {summary['files']['failed']})" if failed else ""
    print(
        f"predicted {summary['predicted']} of {summary['rows']} rows of {config['data']} into {config['out']}, "
        f"{failed} could not be featurized{where}{_headline(summary['metrics'], summary['task'])}"
    )
