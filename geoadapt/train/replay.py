"""Replay: structures like the pretraining data, labelled once by the frozen source model, mixed into training.

Fine-tuning a foundation potential on a narrow target set moves it away from everything else it knew (forgetting,
measured by :mod:`geoadapt.tasks.forgetting`). Replay keeps a share of every training step on what the model knew:
structures like its pretraining data (:func:`geoadapt.data.source_like.source_like_structures`, or your own),
labelled by the source model itself before adaptation (:func:`pseudolabel`: energies, forces and, for crystals,
stresses). No pretraining data is needed.

It is data-level mixing (:class:`ReplayLoader` wraps any loader of PyG batches), so it works with every strategy
(fine-tuning, freezing, LoRA, parity averaging, ...) and with any training loop, the Trainer's included::

    replay = pseudolabel(model, source_like_structures(64, exclude=target_elements))
    trainer.fit(ReplayLoader(train_loader, replay, ratio=0.25), val_loader)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import torch
from ase import Atoms
from torch import Tensor, nn
from torch_geometric.data import Batch, Data

from geoadapt.models.potential import model_dtype, potential
from geoadapt.structure import to_dtype

LABELS = ("energy", "force", "stress")


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def _as_graph(structure: Atoms | Data) -> Data:
    from geoadapt.io.reading import atoms_to_data

    if isinstance(structure, Atoms):
        return atoms_to_data(structure)
    if isinstance(structure, Data):
        return Data(**{k: structure[k] for k in ("z", "pos", "cell", "pbc") if structure.get(k) is not None})
    raise TypeError(f"structures: expected ase.Atoms or torch_geometric Data, got {type(structure).__name__}")


def _periodic_3d(graph: Data) -> bool:
    return graph.get("pbc") is not None and graph.get("cell") is not None and bool(graph.pbc.all())


def pseudolabel(
    model: nn.Module, structures: Iterable[Atoms | Data], stress: bool | None = None, batch_size: int = 16
) -> list[Data]:
    """Graphs of ``structures`` labelled by ``model`` as it is now: ``energy`` ``(1, 1)`` eV (and ``y``), ``force``
    ``(N, 3)`` eV/Å and, for structures periodic in 3D, ``stress`` ``(1, 3, 3)`` eV/Å³ (float32, on the CPU).

    ``stress``: ``None`` labels stresses when every structure is periodic in 3D; ``True`` demands it; ``False`` leaves
    them out. The model is put in evaluation mode for the labelling and left in the mode it was in.
    """
    graphs = [_as_graph(s) for s in structures]
    if not graphs:
        raise ValueError("structures: expected at least one structure to label, got none")
    periodic = [_periodic_3d(g) for g in graphs]
    if stress and not all(periodic):
        raise ValueError(f"stress: expected structures periodic in 3D, got structure {periodic.index(False)} not")
    with_stress = all(periodic) if stress is None else bool(stress)
    dtype, device, was_training = model_dtype(model), _device(model), model.training
    model.eval()
    labelled = []
    try:
        for start in range(0, len(graphs), batch_size):
            part = graphs[start : start + batch_size]
            batch = to_dtype(Batch.from_data_list(part), dtype).to(device)
            with torch.no_grad():
                out = potential(model, batch, stress=with_stress)
            labelled.extend(_labelled(part, out.energy, out.forces, out.stress, batch))
    finally:
        model.train(was_training)
    return labelled


def _labelled(part: list[Data], energy: Tensor, forces: Tensor, stress: Tensor | None, batch: Batch) -> list[Data]:
    out = []
    for i, graph in enumerate(part):
        rows = batch.batch == i
        labelled = graph.clone()
        labelled.energy = energy[i].reshape(1, 1).detach().float().cpu()
        labelled.y = labelled.energy
        labelled.force = forces[rows].detach().float().cpu()
        if stress is not None:
            labelled.stress = stress[i].reshape(1, 3, 3).detach().float().cpu()
        out.append(labelled)
    return out


def _fields(target: Data, replay: Data) -> dict[str, Tensor]:
    """The fields of ``replay`` that ``target`` has (a missing one is an error), and a cell and ``pbc`` for a
    molecule that has none (zeros, all false) when the other side is periodic."""
    fields = {}
    for key in target.keys():
        if replay.get(key) is None:
            raise ValueError(
                f"replay: expected the fields of the training graphs on the replay graphs, got no {key!r} "
                f"(replay graphs have {sorted(replay.keys())}; pseudolabel them with the labels the training uses)"
            )
        fields[key] = replay[key]
    return fields


def _molecule_cell(graph: Data, dtype: torch.dtype) -> Data:
    """``graph`` with a zero cell and ``pbc`` all false when it has none (a molecule), so it batches with crystals."""
    if graph.get("cell") is not None and graph.get("pbc") is not None:
        return graph
    graph = graph.clone()
    graph.cell = torch.zeros(1, 3, 3, dtype=dtype)
    graph.pbc = torch.zeros(1, 3, dtype=torch.bool)
    return graph


def mix(targets: Sequence[Data], replay: Sequence[Data]) -> Batch:
    """One batch of the ``targets`` graphs followed by the ``replay`` graphs, each reduced to the targets' fields.

    A molecule (no cell) mixed with crystals gets a zero cell and ``pbc`` all false (which is what it is)."""
    if not replay:
        return Batch.from_data_list(list(targets))
    periodic = any(g.get("cell") is not None for g in [*targets, *replay])
    dtype = targets[0].pos.dtype
    if periodic:
        targets = [_molecule_cell(g, dtype) for g in targets]
        replay = [_molecule_cell(g, dtype) for g in replay]
    reduced = [Data(**{k: v.to(targets[0][k].dtype) for k, v in _fields(targets[0], g).items()}) for g in replay]
    return Batch.from_data_list([*targets, *reduced])


class ReplayLoader:
    """Each batch of ``loader`` with replay graphs added so that they are a share ``ratio`` of every step's graphs.

    ``ratio`` = replay graphs / (target + replay graphs): with ``ratio=0.25`` and 4 target graphs a step, one replay
    graph on average joins each batch (fractions carry over from step to step, so the share is exact over an epoch).
    Replay graphs are drawn without replacement, reshuffled when all have been used; the order comes from torch's
    global random state, as a shuffling ``DataLoader``'s does, so a seeded run repeats. ``len`` is the loader's.

    Args:
        loader: yields PyG ``Batch`` es of labelled graphs (energies and forces for potentials).
        replay: labelled graphs (:func:`pseudolabel`) carrying at least the fields of the training graphs.
        ratio: share of replay graphs in each step, in ``[0, 1)``.
    """

    def __init__(self, loader: Iterable[Batch], replay: Sequence[Data], ratio: float = 0.25) -> None:
        if not (isinstance(ratio, (int, float)) and 0 <= ratio < 1):
            raise ValueError(f"ratio: expected a share of replay graphs in [0, 1), got {ratio!r}")
        if ratio > 0 and not replay:
            raise ValueError(f"replay: expected labelled graphs to mix in at ratio {ratio}, got none")
        self.loader, self.replay, self.ratio = loader, list(replay), float(ratio)

    @property
    def dataset(self) -> None:
        """Not exposed: a loader rebuilt from its dataset (the Trainer's sharding under torchrun) would lose replay."""
        raise AttributeError(
            "ReplayLoader.dataset: expected a single-process run; sharding across processes rebuilds a loader from "
            "its dataset and would drop the replay graphs, so a ReplayLoader has none"
        )

    def __len__(self) -> int:
        return len(self.loader)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Batch]:
        per_target = self.ratio / (1 - self.ratio)
        order: list[int] = []
        carry = 0.0
        for batch in self.loader:
            targets = batch.to_data_list() if isinstance(batch, Batch) else [batch]
            carry += per_target * len(targets)
            count = math.floor(carry + 1e-9)
            carry -= count
            picks = []
            while len(picks) < count:
                if not order:
                    order = torch.randperm(len(self.replay)).tolist()
                picks.append(self.replay[order.pop()])
            yield mix(targets, picks)

    def __repr__(self) -> str:
        return f"ReplayLoader(ratio={self.ratio}, replay={len(self.replay)} graphs, batches={len(self)})"
