"""``geoadapt.predict``: a model's predictions on new inputs, in target units, with their own equivariance errors."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from geoadapt.groups import Group
from geoadapt.prediction.progress import Progress
from geoadapt.prediction.run import iter_predictions
from geoadapt.prediction.scoring import ScoreOptions
from geoadapt.prediction.sources import Source, open_source
from geoadapt.prediction.table import Predictions, concat, task_metrics
from geoadapt.prediction.target_units import TargetPredictor, resolve_predictor
from geoadapt.prediction.writer import OutputFiles, StreamingCsv
from geoadapt.tasks import Task

UNITS = {"smiles": "molecules", "structures": "structures", "items": "inputs"}  # what the rate counts


@dataclass
class Settings:
    """How ``predict`` reads and scores (the keyword arguments of :func:`predict` besides the model and data)."""

    task: Task | str | None = None
    with_equivariance: bool = False
    symmetrize: bool = False
    group: Group | str | None = None
    samples: int = 8
    seed: int = 0
    forces: bool = False
    smiles_column: str | None = None
    target_columns: Sequence[str] | None = None
    id_column: str | None = None
    split: str | None = None
    limit: int | None = None
    batch_size: int = 256
    chunk_size: int = 1000
    workers: int | None = None
    device: str | torch.device | None = None
    progress: bool = False
    trust_code: bool = False


def model_of(model: nn.Module | str | os.PathLike, trust_code: bool = False) -> nn.Module:
    """``model`` itself, or the checkpoint at that path loaded safely (:func:`geoadapt.checkpoints.load`: tensors
    and plain data only; a wrapped model's class imported only when registered or with ``trust_code``)."""
    if isinstance(model, (str, os.PathLike)):
        from geoadapt.checkpoints import load

        return load(model, trust_code=trust_code)
    if not isinstance(model, nn.Module):
        raise TypeError(f"model: expected a torch.nn.Module or a checkpoint path, got {type(model).__name__}")
    return model


def prepare(model: nn.Module | str | os.PathLike, data: Any, settings: Settings) -> tuple[TargetPredictor, Source]:
    """The predictor in target units and the rows of ``data`` (a structure file makes the task ``potential``)."""
    model = model_of(model, settings.trust_code)
    source = open_source(
        data, settings.smiles_column, settings.target_columns, settings.id_column, settings.split, settings.limit
    )
    task = settings.task or ("potential" if source.kind == "structures" else None)
    target = resolve_predictor(model, task)
    if settings.forces and not target.task.gives_forces:
        raise ValueError(f"forces: only an energy model (task 'potential') gives forces, got task {target.task.name!r}")
    if target.spec.output_level != "graph":
        raise ValueError(
            f"model spec: expected graph-level outputs (one row per input), got {target.spec.output_level}"
        )
    return target, source


def _chunks(target: TargetPredictor, source: Source, settings: Settings, start: int = 0):
    options = ScoreOptions(
        settings.group, settings.samples, settings.with_equivariance, settings.symmetrize, settings.forces
    )
    return iter_predictions(
        target, source, options, settings.chunk_size, settings.batch_size, settings.workers, settings.seed,
        settings.device, start,
    )  # fmt: skip


def settings_of(options: dict[str, Any]) -> Settings:
    """:class:`Settings` from keyword arguments; a ``TypeError`` names one that is not a setting."""
    known = Settings.__dataclass_fields__
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"predict: expected keyword arguments among {sorted(known)}, got {unknown[0]!r}")
    return Settings(**options)


def predict(
    model: nn.Module | str | os.PathLike,
    data: Any,
    *,
    task: Task | str | None = None,
    with_equivariance: bool = False,
    symmetrize: bool = False,
    group: Group | str | None = None,
    samples: int = 8,
    seed: int = 0,
    forces: bool = False,
    smiles_column: str | None = None,
    target_columns: Sequence[str] | None = None,
    id_column: str | None = None,
    split: str | None = None,
    limit: int | None = None,
    batch_size: int = 256,
    chunk_size: int = 1000,
    workers: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = False,
    trust_code: bool = False,
) -> Predictions:
    """Predict every input of ``data`` with ``model``, in target units; inputs that cannot be featurized are listed
    in ``.failed`` with their row and the reason, never left out silently.

    Args:
        model: a loaded checkpoint, a trained model, any model with a ``spec``, or a checkpoint's path (read as
            ``geoadapt.load`` reads it, running no code from it; ``trust_code`` as there).
        data: a CSV file of SMILES, a structure file (extxyz: energies of a potential), a dataset card name, a list
            of SMILES or of ASE ``Atoms``, or a dataset (or list) of graphs.
        task: a registered task name (``"regression"``, ``"classification"``, ``"potential"``) or a
            :class:`~geoadapt.tasks.Task`; default the checkpoint's (a structure file: ``"potential"``). Answers are
            those of ``Trainer.predictor()``: through the target scaler the model carries, in target units.
        with_equivariance: also each prediction's equivariance error under ``group`` (``samples`` transformed
            copies, stacked with the input in one forward): relative to the targets' spread for regression with a
            scaler, else in output units; classifiers also get the share of copies keeping the class.
        symmetrize: also each prediction's symmetrized value (:mod:`geoadapt.prediction.symmetrized`).
        group: a group or its name (``"so3"``); default the model's adaptation group, else its inputs' (3D: SO(3)).
        samples, seed: transformed copies per input; their seed. forces: also the forces ``(atoms, 3)`` in eV/Å.
        smiles_column, target_columns, id_column: the columns of a CSV file (default ``smiles``; targets and id
            optional). split: a dataset card's split (default every row). limit: the first ``limit`` rows only.
        batch_size, chunk_size, workers: inputs per forward; rows per chunk; processes that featurize SMILES
            (default every core). device: where the model runs (default where it is). progress: say it per chunk.

    Returns:
        :class:`~geoadapt.prediction.table.Predictions`: ``values`` (target units, energies, or class
        probabilities), ``labels`` (classifiers), ``rows``, ``error``, ``symmetrized``, ``failed``, ``metrics()``.
    """
    settings = Settings(**{k: v for k, v in locals().items() if k not in ("model", "data")})
    target, source = prepare(model, data, settings)
    meter = Progress(settings.progress, unit=UNITS[source.kind])
    parts = []
    for rows, part in _chunks(target, source, settings):
        parts.append(part)
        meter.update(rows, len(part), len(part.failed))
    meter.close()
    if not parts:
        raise ValueError(f"data {source.label}: expected rows to predict, got none")
    return concat(parts)


def predict_to_csv(
    model: nn.Module | str | os.PathLike,
    data: Any,
    out: str | os.PathLike,
    forces_out: str | os.PathLike | None = None,
    overwrite: bool = False,
    resume: bool = False,
    fingerprint: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """:func:`predict`, each chunk written to ``out`` as it comes (bounded memory, whatever the size of ``data``).

    The rows that could not be featurized go to ``<out stem>.failed.csv`` (row, id, SMILES, reason); with
    ``forces_out``, a potential's forces to that file (row, atom, fx, fy, fz). Files are written atomically per
    chunk and renamed when the run finishes (:mod:`geoadapt.prediction.writer`); ``resume=True`` continues an
    interrupted run after its last row written (with the same ``fingerprint``: the settings that shape the
    output). ``options``: the keyword arguments of :func:`predict`. Returns the counts (``rows`` read,
    ``predicted``, ``failed``), the files written and, when the data has targets, ``metrics`` computed from the
    written file.
    """
    settings = settings_of({**options, "forces": forces_out is not None or options.get("forces", False)})
    target, source = prepare(model, data, settings)
    files = OutputFiles.beside(out, forces_out)
    writer = StreamingCsv(files, _settings(data, options, fingerprint), overwrite, resume)
    start = writer.begin()
    meter = Progress(settings.progress, unit=UNITS[source.kind])
    meter.start_at(start)
    try:
        for rows, part in _chunks(target, source, settings, start):
            writer.append(part, rows)
            meter.update(rows, len(part), len(part.failed))
    except BaseException:
        writer.abandon()  # an input refused before its first chunk leaves no files behind
        raise
    finally:
        meter.close()
    counts = writer.finish()
    written = {name: str(path) for name, path in files.named().items() if path.is_file()}
    return {
        **counts,
        "task": target.task.name,
        "files": written,
        "metrics": metrics_from_csv(files.predictions, target.task),
    }


def _settings(data: Any, options: dict[str, Any], fingerprint: dict[str, Any] | None) -> dict[str, Any]:
    """What a resumed run must share with the interrupted one: the data, the options that shape the output and the
    caller's ``fingerprint``, as JSON reads them back (objects by their ``repr``)."""
    shaping = {k: v for k, v in options.items() if k not in ("workers", "progress", "device", "trust_code")}
    return json.loads(json.dumps({"data": str(data), **shaping, **(fingerprint or {})}, default=repr, sort_keys=True))


def metrics_from_csv(path: str | os.PathLike, task: Task) -> dict[str, float]:
    """The task metrics of a predictions file of ``geoadapt predict`` against its ``target`` columns (``{}`` without
    them), from its prediction columns (``task.prediction_column``: ``prediction``, ``probability``, ``energy``)
    turned back into outputs (:meth:`~geoadapt.tasks.Task.outputs_from_values`). ``task``: the task that wrote it."""
    with Path(path).open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        name = task.prediction_column
        outputs = [i for i, h in enumerate(header) if h == name or h.startswith(f"{name}_")]
        targets = [i for i, h in enumerate(header) if h == "target" or h.startswith("target_")]
        if not targets or not outputs:
            return {}
        values = np.array([[float(r[i]) for i in outputs + targets] for r in reader], dtype=np.float64)
    values = values.reshape(-1, len(outputs) + len(targets))
    with np.errstate(divide="ignore"):
        predicted = task.outputs_from_values(torch.from_numpy(values[:, : len(outputs)]))
    return task_metrics(task, predicted, torch.from_numpy(values[:, len(outputs) :]))
