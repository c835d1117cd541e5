"""Shared fixtures: a few real molecules with rdkit conformers, tiny models with known symmetry."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from geoadapt.featurize import smiles_to_data
from geoadapt.structure import to_dtype

SMILES = ["CC(=O)Oc1ccccc1C(=O)O", "CCCCCCO", "c1ccc2ccccc2c1N", "OCC(O)CO", "C1CC1C(=O)N"]

# Tests run in parallel workers (pytest -n 2 on 2 cores): one torch thread each, or they contend.
torch.set_num_threads(1)
os.environ.setdefault("GEOADAPT_DATA", str(Path(__file__).resolve().parents[2] / "shared" / "datasets"))


@pytest.fixture(scope="session")
def molecules() -> Batch:
    """Five real molecules (heavy atoms, rdkit ETKDG + MMFF conformers), float32."""
    return Batch.from_data_list([smiles_to_data(s, seed=1)[0] for s in SMILES])


@pytest.fixture(scope="session")
def molecules64(molecules: Batch) -> Batch:
    """The same molecules in float64."""
    return to_dtype(molecules, torch.float64)


class InvariantPointNet(nn.Module):
    """E(3)- and permutation-invariant point-cloud model: max over points of an MLP of centroid distances."""

    def __init__(self, out_dim: int = 2) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(1, 16), nn.Tanh(), nn.Linear(16, out_dim))

    def forward(self, x: Tensor) -> Tensor:
        r = (x - x.mean(1, keepdim=True)).norm(dim=-1, keepdim=True)
        return self.net(r).max(dim=1).values


class VectorPointNet(nn.Module):
    """E(3)-equivariant ``1o`` outputs: per point ``w(|x_i - c|) (x_i - c)`` (node level) or their sum."""

    def __init__(self, node_level: bool = False) -> None:
        super().__init__()
        self.node_level = node_level
        self.net = nn.Sequential(nn.Linear(1, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x: Tensor) -> Tensor:
        rel = x - x.mean(1, keepdim=True)
        out = self.net(rel.norm(dim=-1, keepdim=True)) * rel
        return out if self.node_level else out.sum(1)


class PooledImageModel(nn.Module):
    """Exactly D4-invariant classifier: a 1x1 convolution, then global average pooling."""

    def __init__(self, channels: int = 1, classes: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, 8, 1)
        self.head = nn.Linear(8, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(torch.tanh(self.conv(x)).mean((-2, -1)))


class FlatImageModel(nn.Module):
    """A classifier on flattened pixels: no rotation symmetry at all."""

    def __init__(self, size: int = 8, classes: int = 3) -> None:
        super().__init__()
        self.head = nn.Linear(size * size, classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(x.flatten(1))
