"""Batch stacking and selection against PyG's own route (``Batch.from_data_list`` over single graphs)."""

import pytest
import torch
from torch_geometric.data import Batch, Data

from geoadapt.structure import concat, gather_graphs, repeat, select_graphs


def _graph(n: int, seed: int) -> Data:
    g = torch.Generator().manual_seed(seed)
    src = torch.randint(0, n, (2 * n,), generator=g)
    dst = torch.randint(0, n, (2 * n,), generator=g)
    return Data(
        x=torch.randn(n, 3, generator=g),
        pos=torch.randn(n, 3, generator=g),
        edge_index=torch.stack([src, dst]),
        edge_attr=torch.randn(2 * n, 2, generator=g),
        y=torch.randn(1, 1, generator=g),
        smiles=f"mol{seed}",
    )


def _same(a: Batch, b: Batch) -> None:
    assert a.num_graphs == b.num_graphs and a.num_nodes == b.num_nodes
    for key in ("x", "pos", "edge_index", "edge_attr", "y", "batch", "ptr"):
        assert torch.equal(a[key], b[key]), key
    assert list(a.smiles) == list(b.smiles)


@pytest.fixture
def graphs() -> list[Data]:
    return [_graph(n, seed) for seed, n in enumerate([3, 5, 1, 4, 6])]


def test_select_graphs_matches_from_data_list_with_repeats(graphs):
    batch = Batch.from_data_list(graphs)
    index = torch.tensor([3, 0, 3, 2, 4, 4])
    expected = Batch.from_data_list([graphs[i] for i in index])
    _same(select_graphs(batch, index), expected)
    _, nodes = gather_graphs(batch, index)
    assert torch.equal(batch.x[nodes], expected.x)  # old node ids in the new order


def test_select_graphs_keeps_edges_sorted_any_way(graphs):
    batch = Batch.from_data_list(graphs)
    flip = torch.randperm(batch.edge_index.shape[1], generator=torch.Generator().manual_seed(0))
    shuffled = batch.clone()
    shuffled.edge_index, shuffled.edge_attr = batch.edge_index[:, flip], batch.edge_attr[flip]
    picked = select_graphs(shuffled, torch.tensor([1, 4]))
    reference = select_graphs(batch, torch.tensor([1, 4]))

    # Same edge multiset per graph: compare (src, dst, attr) rows after sorting.
    def rows(b):
        table = torch.cat([b.edge_index.T.double(), b.edge_attr.double()], dim=1)
        return table[torch.argsort(table[:, 0] * 1000 + table[:, 1] + table[:, 2] * 1e-3)]

    assert torch.allclose(rows(picked), rows(reference))


def test_concat_and_repeat_match_from_data_list(graphs):
    a, b = Batch.from_data_list(graphs[:2]), Batch.from_data_list(graphs[2:])
    _same(concat([a, b]), Batch.from_data_list(graphs))
    _same(repeat(a, 3), Batch.from_data_list(graphs[:2] * 3))


def test_select_rejects_a_field_of_unknown_level(graphs):
    batch = Batch.from_data_list(graphs)
    batch.odd = torch.zeros(7)
    with pytest.raises(ValueError, match="field 'odd'"):
        select_graphs(batch, torch.tensor([0]))
