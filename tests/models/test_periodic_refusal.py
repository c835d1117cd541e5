"""Models whose neighbour graph has no periodic images refuse periodic systems in one line (a silent wrong
energy is the worst answer a potential can give); SevenNet answers them."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from torch_geometric.data import Batch, Data

from geoadapt.models import build
from geoadapt.models.geometry import refuse_periodic

needs_sevenn = pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")


def copper(pbc: bool | None, cell: bool = True) -> Data:
    """Four Cu atoms of an fcc cell (a = 3.6 Å), with or without the cell and periodic flags."""
    a = 3.6
    frac = torch.tensor([[0.0, 0.0, 0.0], [0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]])
    data = Data(z=torch.full((4,), 29), pos=frac * a, x=torch.ones(4, 1))
    if cell:
        data.cell = (torch.eye(3) * a).unsqueeze(0)
    if pbc is not None:
        data.pbc = torch.tensor([[pbc] * 3])
    return data


def test_names_the_graph_and_its_flags():
    batch = Batch.from_data_list([copper(False), copper(True)])
    with pytest.raises(
        ValueError, match=r"mymodel: expected a non-periodic system .* pbc=\[True, True, True\] in graph 1"
    ):
        refuse_periodic(batch, "mymodel")


def test_a_cell_without_flags_is_refused_and_no_cell_is_not():
    with pytest.raises(ValueError, match="a cell without pbc in graph 0"):
        refuse_periodic(copper(None), "mymodel")
    refuse_periodic(copper(None, cell=False), "mymodel")  # a molecule: nothing to refuse
    refuse_periodic(copper(False), "mymodel")  # a cell, not periodic: a box around a molecule


@pytest.mark.parametrize("arch", ["schnet", "egnn", "e3nn_gnn"])
def test_coordinate_models_refuse_and_answer_the_same_without_pbc(arch):
    torch.manual_seed(0)
    model = build(arch, in_dim=1) if arch != "schnet" else build(arch)
    with pytest.raises(ValueError, match=f"{arch}: expected a non-periodic system"):
        model(copper(True))
    # pbc all False is a molecule in a box: the same answer as no cell at all.
    torch.testing.assert_close(model(copper(False)), model(copper(None, cell=False)))


@needs_sevenn
def test_sevennet_answers_a_crystal_and_a_box_is_a_molecule():
    # SevenNet builds periodic edges (tests/models/test_sevennet_periodic.py compares them with sevenn's own
    # calculator); SchNet, EGNN and the e3nn GNN above still refuse.
    model = build("sevennet_0")
    with torch.no_grad():
        crystal, molecule = model(copper(True)), model(copper(False))
    assert crystal.shape == (1, 1) and float(crystal) < float(molecule) - 1.0  # periodic images bind the crystal
    torch.testing.assert_close(model(copper(False)), model(copper(None, cell=False)))
    with pytest.raises(ValueError, match="pbc: expected periodic flags .* got a cell without pbc"):
        model(copper(None))
