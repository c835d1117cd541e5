"""``predict`` chunk by chunk: rows read, featurized on every core one chunk ahead, scored in batches.

:func:`iter_predictions` is the one loop behind ``geoadapt.predict`` (all chunks in one table) and
``geoadapt predict`` (each chunk written as it comes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any

import torch
from torch import nn
from torch_geometric.data import Batch, Data

from geoadapt.devices import module_device, resolve_device, to_device
from geoadapt.equivariance import evaluating
from geoadapt.groups import Group, group_from_name
from geoadapt.prediction.featurizer import Featurizer
from geoadapt.prediction.scoring import Scored, ScoreOptions, score
from geoadapt.prediction.sources import Row, Source
from geoadapt.prediction.symmetrized import symmetrizer
from geoadapt.prediction.table import Failure, Predictions
from geoadapt.prediction.target_units import TargetPredictor
from geoadapt.structure import AnyData, is_graph, to_dtype

SEED_STRIDE = 1_000_003  # the copies of a chunk come from seed * stride + its first row: the same on a resumed run


def declared_group(model: nn.Module, batch: AnyData) -> Group:
    """The group a model's predictions are checked under when none is named: the group its adaptation recorded
    (the last strategy step that names one), else the symmetry its inputs call for (:func:`~geoadapt.groups.
    default_group`: rotations SO(3) for 3D inputs, node permutations for graphs without positions, C4 for images)."""
    from geoadapt.groups import default_group
    from geoadapt.groups.records import group_from_record

    for step in reversed(getattr(model, "adaptations", None) or []):
        if step.get("group") is not None:
            return group_from_record(step["group"])
    return default_group(model.spec, batch)


def _collate(items: list[Any]) -> AnyData:
    if isinstance(items[0], Data):
        return Batch.from_data_list(items)
    return torch.stack(items)


@dataclass
class ChunkPredictor:
    """Scores chunks of rows with ``target``; see :func:`iter_predictions` for the settings."""

    target: TargetPredictor
    options: ScoreOptions
    batch_size: int
    seed: int
    device: torch.device
    target_names: list[str]
    with_keys: bool = False
    with_smiles: bool | None = None  # a SMILES column: for SMILES sources, else when the first chunk's inputs have them
    symmetrizer: nn.Module | None = None
    symmetrized_by: str | None = None

    def prepare(self, batch: AnyData) -> AnyData:
        """``batch`` on the model's device and in its floating dtype."""
        dtype = next((p.dtype for p in self.target.network.parameters() if p.is_floating_point()), None)
        fields = [batch.get(k) for k in ("pos", "x")] if is_graph(batch) else [batch]
        floating = next((t for t in fields if isinstance(t, torch.Tensor) and t.is_floating_point()), None)
        if dtype is not None and floating is not None and floating.dtype != dtype:
            batch = to_dtype(batch, dtype)
        return to_device(batch, self.device)

    def _resolve_group(self, batch: AnyData) -> None:
        """Fix the group (and the exact symmetrization it calls for) on the first batch, when none was named."""
        if self.options.group is None:
            self.options.group = declared_group(self.target.network, batch)
        if self.options.symmetrize and self.symmetrized_by is None:
            self.symmetrizer, self.symmetrized_by = symmetrizer(
                self.target.module, self.options.group, self.target.spec
            )

    def __call__(self, rows: list[Row], start: int) -> Predictions:
        """Predictions of the featurized ``rows`` (the others listed as failed); ``start``: rows read before them."""
        if self.with_smiles is None:
            self.with_smiles = any(r.smiles is not None for r in rows)
        failed = [Failure(r.row, r.smiles, r.reason or "no input", r.key) for r in rows if r.data is None]
        good = [r for r in rows if r.data is not None]
        generator = torch.Generator().manual_seed(self.seed * SEED_STRIDE + start)
        scored = []
        for first in range(0, len(good), self.batch_size):
            part = good[first : first + self.batch_size]
            batch = self.prepare(_collate([r.data for r in part]))
            if self.options.with_equivariance or self.options.symmetrize:
                self._resolve_group(batch)
            scored.append(score(self.target, batch, self.options, generator, self.symmetrizer))
            if scored[-1].outputs.shape[0] != len(part):
                raise ValueError(
                    f"model output: expected one row per input ({len(part)}), got {scored[-1].outputs.shape[0]} "
                    f"(predict takes models with graph-level outputs)"
                )
        return self._table(good, failed, scored)

    def _table(self, good: list[Row], failed: list[Failure], scored: list[Scored]) -> Predictions:
        """The chunk's table; a chunk where every row failed has the same columns, empty."""
        dim, options = self.target.spec.output.dim, self.options

        def cat(name: str, wanted: bool, *shape: int) -> torch.Tensor | None:
            values = [getattr(s, name) for s in scored]
            if not wanted:
                return None
            return torch.cat(values).cpu() if values else torch.empty(0, *shape)

        width = len(self.target_names) or next((len(r.targets) for r in good if r.targets is not None), 0)
        targets = [r.targets if r.targets is not None else [float("nan")] * width for r in good]
        classifier = self.target.task.measures_consistency
        return Predictions(
            self.target.task, [r.row for r in good], cat("outputs", True, dim),
            keys=[r.key or "" for r in good] if self.with_keys else None,
            smiles=[r.smiles for r in good] if self.with_smiles else None,
            targets=torch.tensor(targets, dtype=torch.float64).reshape(len(good), width) if width else None,
            error=cat("error", options.with_equivariance), relative_error=self.target.scale is not None,
            consistency=cat("consistency", options.with_equivariance and classifier),
            symmetrized=cat("symmetrized", options.symmetrize, dim),
            forces=[f.cpu() for s in scored for f in s.forces] if options.forces else None,
            failed=failed, target_names=self.target_names,
            group=repr(options.group) if (options.with_equivariance or options.symmetrize) and scored else None,
            symmetrized_by=self.symmetrized_by,
        )  # fmt: skip


def chunks(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    """Consecutive lists of ``size`` rows (the last one shorter)."""
    while chunk := list(islice(rows, size)):
        yield chunk


def iter_predictions(
    target: TargetPredictor,
    source: Source,
    options: ScoreOptions,
    chunk_size: int = 1000,
    batch_size: int = 256,
    workers: int | None = None,
    seed: int = 0,
    device: str | torch.device | None = None,
    start: int = 0,
) -> Iterator[tuple[int, Predictions]]:
    """``(rows read so far, predictions of the chunk)`` for each chunk of ``chunk_size`` rows of ``source``.

    The rows of chunk ``k + 1`` are featurized on ``workers`` processes while the model scores chunk ``k``, so at most
    two chunks are in memory whatever the size of the source. ``start``: rows to skip (read, not featurized), as a
    resumed run does; ``device``: where the model runs (default: where it is; data follows).
    """
    for name, value in (("chunk_size", chunk_size), ("batch_size", batch_size), ("samples", options.samples)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a whole number >= 1, got {value!r}")
    if isinstance(options.group, str):
        options.group = group_from_name(options.group)
    model = target.module
    where = resolve_device(device) if device is not None else module_device(model) or torch.device("cpu")
    model.to(where)
    run = ChunkPredictor(
        target, options, batch_size, seed, where, source.target_names, source.with_keys, source.kind == "smiles" or None
    )
    skipped = sum(1 for _ in islice(source.rows, start))
    read = skipped
    with Featurizer(workers) as featurizer, evaluating(model):
        pieces = chunks(source.rows, chunk_size)
        pending = featurizer.start(first) if (first := next(pieces, None)) is not None else None
        while pending is not None:
            upcoming = next(pieces, None)
            following = featurizer.start(upcoming) if upcoming is not None else None
            rows = pending.collect()
            yield read + len(rows), run(rows, read)
            read += len(rows)
            pending = following
