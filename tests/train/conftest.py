"""Small real-data loaders shared by the engine tests."""

from __future__ import annotations

import pytest
from torch_geometric.loader import DataLoader

from geoadapt.data import load


@pytest.fixture(scope="session")
def chembl_loaders():
    """120 training and 40 validation molecules of rdkit's ChEMBL2321810 activity set (real conformers)."""
    data = load("rdkit_chembl2321810", limit=160, progress=False)
    train, val = data[list(range(120))], data[list(range(120, 160))]
    return DataLoader(train.graphs, batch_size=32, shuffle=True), DataLoader(val.graphs, batch_size=64)
