"""Crystals through geoadapt's batch slicing and stacking: cell, pbc and stress stay one row per graph."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from geoadapt.io import from_atoms
from geoadapt.structure import (
    concat,
    field_level,
    field_levels,
    gather_graphs,
    repeat,
    select_graphs,
    take_graphs,
    to_dtype,
    window,
)
from tests.io.frames import crystals


@pytest.fixture(scope="module")
def graphs():
    one_atom = [from_atoms([a]).graphs[0] for a in crystals() if len(a) == 1]
    return from_atoms(crystals()).graphs + one_atom  # 4, 4, 4, 1 and 1 atoms


def same_graphs(batch: Batch, expected: list) -> None:
    got = batch.to_data_list()
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert sorted(g.keys()) == sorted(e.keys())
        for key in e.keys():
            assert torch.equal(g[key], e[key]), key


def test_periodic_fields_are_graph_level(graphs):
    ones = Batch.from_data_list([graphs[3], graphs[4]])  # as many cells as atoms
    levels = field_levels(ones)
    assert levels["cell"] == levels["pbc"] == levels["stress"] == "graph"
    assert field_level(graphs[3], "cell") == "graph" and field_level(graphs[3], "stress") == "graph"


def test_take_concat_repeat_and_gather_keep_each_graph_whole(graphs):
    batch = Batch.from_data_list(graphs)
    same_graphs(take_graphs(batch, torch.tensor([3, 4, 0]))[0], [graphs[i] for i in (3, 4, 0)])
    same_graphs(take_graphs(batch, torch.tensor([1, 2]))[0], graphs[1:3])
    same_graphs(gather_graphs(batch, torch.tensor([4, 4, 1]))[0], [graphs[i] for i in (4, 4, 1)])
    same_graphs(select_graphs(batch, torch.tensor([2, 3])), graphs[2:4])
    same_graphs(window(batch, 2, 3)[0], graphs[2:5])
    same_graphs(repeat(batch, 2), graphs + graphs)
    same_graphs(concat([batch, Batch.from_data_list(graphs[3:])]), graphs + graphs[3:])
    same_graphs(concat([graphs[3], graphs[0]]), [graphs[3], graphs[0]])  # single graphs, no PyG metadata
    double = to_dtype(batch, torch.float64)
    assert double.cell.dtype == double.stress.dtype == torch.float64 and double.pbc.dtype == torch.bool
