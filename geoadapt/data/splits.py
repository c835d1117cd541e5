"""Random and Bemis-Murcko scaffold splits for molecule sets."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
from rdkit import Chem
from rdkit.Chem.Scaffolds import MurckoScaffold

SPLITS = ("train", "val", "test")


def _check(fractions: Sequence[float]) -> None:
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions: expected three non-negative numbers summing to 1, got {list(fractions)}")


def random_split(n: int, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> dict[str, np.ndarray]:
    """Shuffled ``{train, val, test}`` index arrays over ``range(n)``."""
    _check(fractions)
    order = np.random.default_rng(seed).permutation(n)
    a, b = int(round(fractions[0] * n)), int(round((fractions[0] + fractions[1]) * n))
    return {"train": order[:a], "val": order[a:b], "test": order[b:]}


def murcko_scaffold(smiles: str) -> str:
    """Bemis-Murcko scaffold SMILES ('' for acyclic molecules or unparsable input)."""
    mol = Chem.MolFromSmiles(smiles)
    if mol is None:
        return ""
    return MurckoScaffold.MurckoScaffoldSmiles(mol=mol, includeChirality=False)


def scaffold_split(smiles: Sequence[str], fractions: Sequence[float] = (0.8, 0.1, 0.1)) -> dict[str, np.ndarray]:
    """Deterministic scaffold split: whole scaffold groups, largest first, fill train, then val, then test.

    Molecules sharing a scaffold never straddle two parts, so test scaffolds are unseen in training.
    """
    _check(fractions)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(smiles):
        groups[murcko_scaffold(s)].append(i)
    ordered = sorted(groups.values(), key=lambda g: (-len(g), g[0]))
    n = len(smiles)
    parts: dict[str, list[int]] = {k: [] for k in SPLITS}
    for group in ordered:
        if len(parts["train"]) + len(group) <= fractions[0] * n:
            parts["train"].extend(group)
        elif len(parts["val"]) + len(group) <= fractions[1] * n:
            parts["val"].extend(group)
        else:
            parts["test"].extend(group)
    return {k: np.array(sorted(v), dtype=int) for k, v in parts.items()}
