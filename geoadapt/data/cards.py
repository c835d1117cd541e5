"""Dataset cards (``geoadapt/datasets/*.yaml``, shipped with the package) and ``load(name)``."""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from geoadapt.data.cache import data_root
from geoadapt.tasks import check_card_task

CARDS_DIR = Path(__file__).resolve().parents[1] / "datasets"


def card_names() -> list[str]:
    """Names of every dataset card."""
    return sorted(p.stem for p in CARDS_DIR.glob("*.yaml"))


def read_card(name: str) -> dict[str, Any]:
    """The card of dataset ``name`` as a dict (its ``task`` checked against the registry of tasks)."""
    path = CARDS_DIR / f"{name.lower()}.yaml"
    if not path.is_file():
        raise ValueError(f"dataset name: expected one of {card_names()}, got {name!r}")
    card = yaml.safe_load(path.read_text())
    try:
        check_card_task(card.get("task"))
    except ValueError as err:
        raise ValueError(f"dataset card {path.name}: {err}") from None
    return card


def csv_card(
    path: str | os.PathLike,
    smiles_column: str = "smiles",
    target_columns: Sequence[str] = ("y",),
    task: str = "regression",
    split: str = "random",
) -> dict[str, Any]:
    """A card for a CSV of the user's own molecules (SMILES and target columns), split ``random`` or ``scaffold``.

    ``load(csv_card(...), split="train")`` then reads it like a named set (80/10/10, seed 0).
    """
    if split not in ("random", "scaffold"):
        raise ValueError(f"split: expected 'random' or 'scaffold' for a CSV file, got {split!r}")
    check_card_task(task)
    from geoadapt.tasks import TASKS

    path = Path(path).resolve()
    return {
        "name": path.stem,
        "title": f"molecules from {path}",
        "kind": "molecules_csv",
        "file": str(path),
        "smiles_column": smiles_column,
        "target_columns": list(target_columns),
        "task": task,
        "metric": TASKS[task].headline_metric,
        "split": {"protocol": split, "fractions": [0.8, 0.1, 0.1], "seed": 0},
    }


def files_present(card: dict[str, Any], root: str | None = None) -> bool:
    """Whether every file the card lists exists under the data root (cards without files: always)."""
    return all(
        (data_root(root) / f).exists() for f in card.get("files", []) + ([card["file"]] if "file" in card else [])
    )


def _subset(dataset: Any, indices) -> Any:
    if hasattr(dataset, "index_select"):
        return dataset.index_select(list(map(int, indices)))
    if isinstance(dataset, list):
        return [dataset[int(i)] for i in indices]
    return dataset[indices]


def _labels(dataset: Any):
    import torch

    if hasattr(dataset, "labels"):
        return dataset.labels
    return torch.cat([g.y.reshape(-1)[:1] for g in dataset])


def split_indices(card: dict[str, Any], dataset: Any, fold: int = 0) -> dict[str, Any]:
    """``{train, val, test}`` indices by the card's split protocol (seeded)."""
    from geoadapt.data.graphs import stratified_folds
    from geoadapt.data.splits import random_split, scaffold_split

    protocol = card.get("split", {})
    kind = protocol.get("protocol", "random")
    seed = int(protocol.get("seed", 0))
    fractions = protocol.get("fractions", (0.8, 0.1, 0.1))
    if kind == "stratified_10fold":
        return stratified_folds(_labels(dataset), 10, seed, protocol.get("val_fraction", 0.1))[fold]
    if kind == "scaffold":
        return scaffold_split([g.smiles for g in dataset.graphs], fractions)
    if kind == "random":
        return random_split(len(dataset), fractions, seed)
    raise ValueError(
        f"dataset {card['name']!r} split protocol {kind!r}: expected one of "
        "['random', 'scaffold', 'stratified_10fold'] to take a split"
    )


def load(
    name: str | dict[str, Any], root: str | None = None, split: str | None = None, fold: int = 0, **options: Any
) -> Any:
    """Load dataset ``name`` (a card name, or a card such as :func:`csv_card` makes) as its card says.

    ``split`` in ``train``/``val``/``test`` picks a part. Molecule sets return a :class:`MoleculeDataset`
    (options: ``limit`` (the first rows), ``sample`` (rdkit sets: that many rows drawn at random, seed 0, in
    file order: files sorted by series are not skewed; ``dataset.dropped`` then numbers rows of the sample),
    ``num_conformers``, ``seed``, ``workers``, ``progress``); TU sets a PyG
    ``TUDataset``; ``digits`` an :class:`ImageDataset`.
    """
    card = read_card(name) if isinstance(name, str) else name
    kind = card["kind"]
    if kind == "tu":
        from geoadapt.data.graphs import load_tu

        dataset = load_tu(card["tu_name"], root)
    elif kind in ("molecules_csv", "rdkit"):
        dataset = _load_molecules(card, root, **options)
    elif kind == "digits":
        from geoadapt.data.images import load_digits

        dataset = load_digits()
    elif kind == "geometric_shapes":
        from geoadapt.data.pointclouds import load_geometric_shapes

        return load_geometric_shapes(train=split != "test", root=root, **options)
    elif kind == "modelnet":
        from geoadapt.data.pointclouds import load_modelnet

        return load_modelnet(card["modelnet"], train=split != "test", root=root, **options)
    elif kind == "qm9":
        from geoadapt.data.pointclouds import load_qm9

        return load_qm9(root)
    elif kind == "md17":
        from geoadapt.data.pointclouds import load_md17

        return load_md17(card["molecule"], root)
    else:
        raise ValueError(f"dataset card {card['name']!r} kind: expected a known loader, got {kind!r}")
    if split is None:
        return dataset
    if split not in ("train", "val", "test"):
        raise ValueError(f"split: expected 'train', 'val', 'test' or None, got {split!r}")
    return _subset(dataset, split_indices(card, dataset, fold)[split])


def _load_molecules(
    card: dict[str, Any], root: str | None, limit: int | None = None, sample: int | None = None, **options: Any
):
    from geoadapt.data.molecules import build_molecules, from_csv
    from geoadapt.data.rdkit_sets import read_chembl2321810, read_nci5k

    if card["kind"] == "molecules_csv":
        if sample is not None:
            raise ValueError(f"sample: expected None for the CSV set {card['name']!r} (use limit), got {sample}")
        return from_csv(
            data_root(root) / card["file"],
            card["smiles_column"],
            card["target_columns"],
            task=card["task"],
            name=card["name"],
            limit=limit,
            **options,
        )
    reader = {"nci5k": read_nci5k, "chembl2321810": read_chembl2321810}[card["rdkit_set"]]
    smiles, labels = reader()
    if limit is not None:
        smiles, labels = smiles[:limit], labels[:limit]
    if sample is not None:
        if limit is not None:
            raise ValueError(f"limit, sample: expected one of them, got limit={limit} and sample={sample}")
        if not 0 < sample <= len(smiles):
            raise ValueError(f"sample: expected 1 to {len(smiles)} rows of {card['name']!r}, got {sample}")
        rows = sorted(random.Random(0).sample(range(len(smiles)), sample))
        smiles, labels = [smiles[i] for i in rows], [labels[i] for i in rows]
    return build_molecules(card["name"], smiles, [[v] for v in labels], card["task"], card["target_columns"], **options)
