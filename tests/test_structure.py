"""Batch stacking and selection against PyG's own route (``Batch.from_data_list`` over single graphs)."""

import pytest
import torch
from torch_geometric.data import Batch, Data

from geoadapt.groups import Permutation
from geoadapt.spec import Spec
from geoadapt.structure import (
    concat,
    field_level,
    field_levels,
    gather_graphs,
    repeat,
    runs_under,
    select_graphs,
    take_copies,
    take_graphs,
    window,
)


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


def _molecule(n_nodes: int, n_edges: int, seed: int) -> Data:
    """A graph with node, edge and graph fields; the edge field's name does not say "edge"."""
    g = torch.Generator().manual_seed(seed)
    return Data(
        x=torch.randn(n_nodes, 3, generator=g),
        pos=torch.randn(n_nodes, 3, generator=g),
        z=torch.randint(1, 10, (n_nodes,), generator=g),
        edge_index=torch.randint(0, n_nodes, (2, n_edges), generator=g),
        bond_length=torch.rand(n_edges, 1, generator=g) + seed,
        y=torch.randn(1, 2, generator=g),
        smiles=f"mol{seed}",
    )


# Every graph has as many edges as nodes; then the same totals (10 and 10) with different counts per graph.
SIZES = {"E==N per graph": [(3, 3), (5, 5), (1, 1), (4, 4)], "E==N in total": [(3, 5), (5, 2), (2, 3)]}
FIELDS = ("x", "pos", "z", "edge_index", "bond_length", "y")


@pytest.fixture(params=list(SIZES))
def molecules(request) -> list[Data]:
    return [_molecule(n, e, seed) for seed, (n, e) in enumerate(SIZES[request.param])]


def _same_graph(a: Data, b: Data, where: str) -> None:
    assert sorted(a.keys()) == sorted(b.keys()), where
    for key in b.keys():
        if isinstance(b[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), f"{where}: {key}"
        else:
            assert a[key] == b[key], f"{where}: {key}"
    assert a.num_nodes == b.num_nodes, where


def _same_batch(a: Batch, b: Batch) -> None:
    """``a`` holds the same fields as ``b`` and splits into the same graphs (by every PyG route)."""
    assert a.num_graphs == b.num_graphs and a.num_nodes == b.num_nodes
    assert sorted(a.keys()) == sorted(b.keys())
    for key in b.keys():
        if isinstance(b[key], torch.Tensor):
            assert torch.equal(a[key], b[key]), key
        else:
            assert a[key] == b[key], key
    for i, (ga, gb) in enumerate(zip(a.to_data_list(), b.to_data_list(), strict=True)):
        _same_graph(ga, gb, f"to_data_list()[{i}]")
    _same_graph(a.get_example(a.num_graphs - 1), b.get_example(b.num_graphs - 1), "get_example")
    picks = [a.num_graphs - 1, 0]
    for ga, gb in zip(a.index_select(picks), b.index_select(picks), strict=True):
        _same_graph(ga, gb, "index_select")


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


# --- levels from PyG's metadata (graphs with as many edges as nodes) -------------------------------


def test_gather_graphs_with_repeats_gives_complete_batches(molecules):
    batch = Batch.from_data_list(molecules)
    index = torch.tensor([2, 0, 2, 1, 1, 0])
    picked, nodes = gather_graphs(batch, index)
    _same_batch(picked, Batch.from_data_list([molecules[i] for i in index]))
    assert torch.equal(batch.x[nodes], picked.x)


def test_concat_and_repeat_give_complete_batches(molecules):
    a, b = Batch.from_data_list(molecules[:2]), Batch.from_data_list(molecules[2:])
    _same_batch(concat([a, b]), Batch.from_data_list(molecules))
    _same_batch(repeat(a, 3), Batch.from_data_list(molecules[:2] * 3))
    # A batch stacked with single graphs, and single graphs alone.
    _same_batch(concat([a, molecules[0], b]), Batch.from_data_list(molecules[:2] + molecules[:1] + molecules[2:]))
    _same_batch(concat([molecules[1], molecules[1]]), Batch.from_data_list([molecules[1]] * 2))
    _same_batch(repeat(molecules[0], 2), Batch.from_data_list([molecules[0]] * 2))


def test_batches_of_our_batches_round_trip(molecules):
    """What these helpers return is again a PyG batch: cut, stack and split it once more."""
    batch = Batch.from_data_list(molecules)
    twice = repeat(gather_graphs(batch, torch.tensor([1, 0]))[0], 2)
    again = gather_graphs(concat([twice, molecules[2]]), torch.tensor([4, 3]))[0]
    _same_batch(again, Batch.from_data_list([molecules[2], molecules[0]]))


def test_field_level_reads_pyg_slices():
    molecules = [_molecule(n, e, seed) for seed, (n, e) in enumerate(SIZES["E==N in total"])]
    batch = Batch.from_data_list(molecules)
    assert batch.num_nodes == batch.num_edges  # a row count cannot tell nodes from edges here
    expected = {"x": "node", "pos": "node", "z": "node", "edge_index": "edge", "bond_length": "edge", "y": "graph"}
    assert {key: field_level(batch, key) for key in FIELDS} == expected
    assert field_levels(batch) == {**expected, "smiles": "graph"}


def test_field_level_falls_back_to_pyg_naming_and_spec_levels_settle_it():
    # Every graph has as many edges as nodes: PyG's slices cannot tell them apart, so its naming rule decides.
    batch = Batch.from_data_list([_molecule(n, e, seed) for seed, (n, e) in enumerate(SIZES["E==N per graph"])])
    batch.edge_weight = batch.bond_length.clone()
    batch._slice_dict["edge_weight"] = batch._slice_dict["bond_length"]
    assert field_level(batch, "bond_length") == "node"
    assert field_level(batch, "edge_weight") == "edge"
    assert field_level(batch, "bond_length", Spec(levels={"bond_length": "edge"})) == "edge"
    assert field_level(batch, "x", Spec(levels={"x": "edge"})) == "edge"  # ambiguous here, so the Spec may say so
    # A Spec that contradicts PyG's slices is refused, naming the field.
    other = Batch.from_data_list([_molecule(n, e, seed) for seed, (n, e) in enumerate(SIZES["E==N in total"])])
    with pytest.raises(ValueError, match="field 'bond_length': Spec.levels says 'node'"):
        field_level(other, "bond_length", Spec(levels={"bond_length": "node"}))


def test_spec_levels_place_fields_of_a_batch_without_slices():
    """Without PyG's slices only the totals are known (E == N here): the Spec says which rows are edges."""
    molecules = [_molecule(n, e, seed) for seed, (n, e) in enumerate(SIZES["E==N in total"])]
    batch = Batch.from_data_list(molecules)
    bare = Batch(**{key: batch[key] for key in batch.keys()})  # same tensors, no slice metadata
    index = torch.tensor([1, 2, 1])
    spec = Spec(levels={"bond_length": "edge"})
    assert field_level(bare, "bond_length") == "node"  # PyG's naming rule: not an "edge*" name
    _same_batch(gather_graphs(bare, index, spec)[0], Batch.from_data_list([molecules[i] for i in index]))
    _same_batch(repeat(bare, 2, spec), Batch.from_data_list(molecules * 2))


def test_fields_of_no_level_follow_their_own_slices():
    """``face`` (one column per triangle) is neither node, edge nor graph: PyG's slices still cut it."""
    graphs = []
    for seed, (n, f) in enumerate([(4, 2), (5, 3), (3, 1)]):
        mol = _molecule(n, n + 1, seed)
        mol.face = torch.randint(0, n, (3, f), generator=torch.Generator().manual_seed(seed))
        graphs.append(mol)
    batch = Batch.from_data_list(graphs)
    index = torch.tensor([2, 0, 0])
    _same_batch(gather_graphs(batch, index)[0], Batch.from_data_list([graphs[i] for i in index]))
    _same_batch(concat([batch, graphs[1]]), Batch.from_data_list(graphs + graphs[1:2]))


def test_explicit_num_nodes_and_python_numbers_survive():
    """Graphs without node features carry ``num_nodes``; Python numbers become one tensor entry per graph."""
    graphs = [Data(edge_index=torch.tensor([[0, 1], [1, 0]]), num_nodes=n, label=n * 10) for n in (2, 4, 3)]
    batch = Batch.from_data_list(graphs)
    _same_batch(gather_graphs(batch, torch.tensor([2, 2, 0]))[0], Batch.from_data_list([graphs[i] for i in (2, 2, 0)]))
    _same_batch(concat([graphs[0], batch]), Batch.from_data_list(graphs[:1] + graphs))


def test_permutation_leaves_edge_fields_alone():
    """Permuting nodes renames the edges' ends; the edge rows (and their values) keep their order."""
    molecules = [_molecule(n, e, seed) for seed, (n, e) in enumerate(SIZES["E==N in total"])]
    batch = Batch.from_data_list(molecules)
    g = Permutation().sample_like(batch, torch.Generator().manual_seed(3))
    moved = Permutation().act(g, batch, Spec(fields={"pos": "1o"}))
    by_hand = []
    for i, mol in enumerate(molecules):
        local = g[batch.ptr[i] : batch.ptr[i + 1]] - batch.ptr[i]  # new node j is old node local[j]
        out = mol.clone()
        out.x, out.pos, out.z = mol.x[local], mol.pos[local], mol.z[local]
        out.edge_index = torch.argsort(local)[mol.edge_index]
        by_hand.append(out)
    expected = Batch.from_data_list(by_hand)
    for key in FIELDS:
        assert torch.equal(moved[key], expected[key]), key


@pytest.mark.parametrize("first,count", [(0, 1), (1, 2), (3, 1), (0, 4)])
def test_take_copies_matches_from_data_list_of_the_moved_copies(molecules, first, count):
    """Consecutive copies cut out of K permuted copies: the same batch PyG builds from those graphs."""
    batch, copies = Batch.from_data_list(molecules), 4
    tiled = repeat(batch, copies)
    g = Permutation().sample_like(tiled, torch.Generator().manual_seed(first))
    moved = Permutation().act(g, tiled, Spec(fields={"pos": "1o", "x": "3x0e"}))
    part = take_copies(moved, copies, first, count, repeat(batch, count), unchanged=tiled)
    B = len(molecules)
    _same_batch(part, Batch.from_data_list(moved.to_data_list()[first * B : (first + count) * B]))
    assert take_copies(torch.arange(8.0)[:, None], 4, 1, 2, None).flatten().tolist() == [2.0, 3.0, 4.0, 5.0]


# --- runs of graphs cut as slices of PyG's own fields ---------------------------------------------


def test_windows_and_wrapping_runs_match_from_data_list(molecules):
    batch = Batch.from_data_list(molecules)
    n = len(molecules)
    for start, count in [(0, 2), (1, n - 1), (n - 1, 1)]:
        picked, nodes = window(batch, start, count)
        _same_batch(picked, Batch.from_data_list(molecules[start : start + count]))
        assert torch.equal(batch.x[nodes], picked.x)
        # A slice of the batch's own storage, not a gathered copy.
        assert picked.pos.untyped_storage().data_ptr() == batch.pos.untyped_storage().data_ptr()
    run = torch.tensor([n - 1, 0, 1])  # wraps from the last graph to the first
    picked, nodes = take_graphs(batch, run)
    _same_batch(picked, Batch.from_data_list([molecules[i] for i in run]))
    assert torch.equal(batch.pos[nodes], picked.pos)
    scattered = torch.tensor([2, 0])  # not a run: gathered
    _same_batch(take_graphs(batch, scattered)[0], Batch.from_data_list([molecules[i] for i in scattered]))
    with pytest.raises(ValueError, match="window"):
        window(batch, n - 1, 2)
    for outside in ([n], [-1], [0, n]):
        with pytest.raises(ValueError, match=r"graphs: expected indices in \[0, "):
            take_graphs(batch, torch.tensor(outside))


def test_fields_pyg_cannot_describe_take_the_general_route(molecules):
    """A field set after batching has no PyG slices: windows and stacks place it by its level instead."""
    batch = Batch.from_data_list(molecules)
    batch.charge = torch.arange(batch.num_nodes, dtype=torch.float)  # node level, set after batching
    picked, nodes = window(batch, 1, 2)
    assert torch.equal(picked.charge, batch.charge[nodes])
    expected = Batch.from_data_list(molecules[1:3])
    assert torch.equal(picked.edge_index, expected.edge_index) and torch.equal(picked.x, expected.x)
    stacked = concat([batch, picked])
    assert torch.equal(stacked.charge, torch.cat([batch.charge, picked.charge]))


def test_runs_under_a_node_budget_cover_the_batch_in_order():
    graphs = [_graph(n, seed) for seed, n in enumerate([3, 9, 2, 2, 4, 1])]
    batch = Batch.from_data_list(graphs)
    runs = runs_under(batch, 5)
    assert [r.num_graphs for r in runs] == [1, 1, 2, 2]  # the 9-node graph runs alone
    assert all(r.num_nodes <= 5 or r.num_graphs == 1 for r in runs)
    rebuilt = Batch.from_data_list([g for r in runs for g in r.to_data_list()])
    for key in ("x", "pos", "edge_index", "batch", "ptr"):
        assert torch.equal(rebuilt[key], batch[key]), key
