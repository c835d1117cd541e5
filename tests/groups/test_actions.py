"""Actions: homomorphisms on every data kind, checked against independent routes."""

from __future__ import annotations

import math

import networkx as nx
import pytest
import torch
from e3nn import o3
from torch_geometric.data import Batch, Data
from torch_geometric.utils import to_networkx

from geoadapt import Spec
from geoadapt.groups import E3, O3, SE3, SO2, SO3, Cyclic, Dihedral, Permutation, SignFlip, Translation
from geoadapt.groups.irreps import quaternion_matrix

SPEC = Spec(fields={"pos": "1o", "force": "1o", "x": "2x0e+1e", "edge_vec": "1o", "q": "0o"}, output="0e")
GRAPH_GROUPS = [
    SO3(),
    O3(),
    E3(),
    SE3(),
    Translation(),
    Permutation(),
    SignFlip(),
    Cyclic(4),
    Dihedral(3),
    SO2(),
    Permutation() * E3(),
    SignFlip() * Permutation() * O3(),
]


def _graph(n: int, seed: int) -> Data:
    gen = torch.Generator().manual_seed(seed)
    edge_index = torch.stack([torch.arange(n - 1), torch.arange(1, n)])
    edge_index = torch.cat([edge_index, edge_index.flip(0)], 1)
    return Data(
        pos=torch.randn(n, 3, generator=gen, dtype=torch.float64),
        force=torch.randn(n, 3, generator=gen, dtype=torch.float64),
        x=torch.randn(n, 5, generator=gen, dtype=torch.float64),
        q=torch.randn(n, 1, generator=gen, dtype=torch.float64),
        eigvecs=torch.randn(n, 3, generator=gen, dtype=torch.float64),
        edge_vec=torch.randn(edge_index.shape[1], 3, generator=gen, dtype=torch.float64),
        label=torch.arange(n),
        edge_index=edge_index,
        y=torch.randn(1, 2, dtype=torch.float64),
    )


@pytest.fixture
def graphs() -> Batch:
    return Batch.from_data_list([_graph(n, n) for n in (4, 6, 5)])


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return torch.allclose(a, b, atol=1e-10)
    return all(
        torch.allclose(a[k].double(), b[k].double(), atol=1e-10) for k in a.keys() if isinstance(a[k], torch.Tensor)
    )


@pytest.mark.parametrize("group", GRAPH_GROUPS, ids=repr)
def test_graph_action_is_homomorphism(group, graphs):
    gen = torch.Generator().manual_seed(3)
    g, h = group.sample_like(graphs, gen), group.sample_like(graphs, gen)
    lhs = group.act(g, group.act(h, graphs, SPEC), SPEC)
    assert _same(lhs, group.act(group.compose(g, h), graphs, SPEC))
    assert not _same(group.act(g, graphs, SPEC), graphs)  # it does something
    assert _same(group.act(group.inverse(g), group.act(g, graphs, SPEC), SPEC), graphs)


@pytest.mark.parametrize(
    "group",
    [SO3(), O3(), E3(), SE3(), Translation(), Permutation(), Cyclic(4), SO2(), Permutation() * E3()],
    ids=repr,
)
def test_point_cloud_action_is_homomorphism(group):
    x = torch.randn(4, 10, 3, dtype=torch.float64)
    g, h = group.sample_like(x), group.sample_like(x)
    assert _same(group.act(g, group.act(h, x, SPEC), SPEC), group.act(group.compose(g, h), x, SPEC))


@pytest.mark.parametrize("group", [Cyclic(4), Dihedral(4), Cyclic(2), Dihedral(1)], ids=repr)
def test_image_action_is_exact_homomorphism(group):
    images = torch.randn(6, 2, 8, 8)
    g, h = group.sample(6), group.sample(6)
    lhs = group.act(g, group.act(h, images, SPEC), SPEC)
    assert torch.equal(lhs, group.act(group.compose(g, h), images, SPEC))  # exact: pixels only move


def test_image_rotations_match_rot90_and_interpolate_between():
    images = torch.randn(3, 1, 9, 9, dtype=torch.float64)
    quarter = Cyclic(4).act(torch.tensor([1, 1, 1]), images, SPEC)
    assert torch.equal(quarter, torch.rot90(images, 1, dims=(-2, -1)))
    # SO2 at exactly 90 degrees takes the exact path; just off it, the interpolated path agrees closely.
    assert torch.equal(SO2().act(torch.full((3,), math.pi / 2), images, SPEC), quarter)
    near = SO2().act(torch.full((3,), math.pi / 2 + 1e-6), images, SPEC)
    assert (near - quarter)[..., 1:-1, 1:-1].abs().max() < 1e-4
    # D4 mirror is a left-right flip.
    assert torch.equal(Dihedral(4).act(torch.tensor([[0, 1]]), images, SPEC), images.flip(-1))


def test_c8_rotation_is_approximate_but_composes():
    smooth = torch.linspace(-1, 1, 33)
    images = torch.exp(-(smooth[None, :] ** 2 + smooth[:, None] ** 2) * 4)[None, None].double()
    group = Cyclic(8)
    twice = group.act(torch.tensor([1]), group.act(torch.tensor([1]), images, SPEC), SPEC)
    once = group.act(torch.tensor([2]), images, SPEC)  # exact rot90
    assert torch.equal(once, torch.rot90(images, 1, dims=(-2, -1)))
    assert (twice - once).abs().max() < 0.05  # interpolation error, documented as approximate


@pytest.mark.parametrize("irreps", ["2x0e+1o+2e", "0o+1e+3o", "2x2e+1o"])
def test_representation_is_homomorphism_float64(irreps):
    group = O3()
    g, h = (
        group.sample(4, torch.Generator().manual_seed(0)),
        group.sample(4, torch.Generator().manual_seed(1)),
    )
    D = lambda r: group.representation(r, irreps)  # noqa: E731
    assert torch.allclose(D(g) @ D(h), D(group.compose(g, h)), atol=1e-10)


def test_irreps_action_matches_e3nn_wigner_matrices(graphs):
    # independent route: build the full block-diagonal D with e3nn and multiply by hand
    g = O3().sample_like(graphs, torch.Generator().manual_seed(5))
    out = O3().act(g, graphs, SPEC)
    D = o3.Irreps("2x0e+1e").D_from_matrix(g)[graphs.batch]
    assert torch.allclose(out.x, torch.einsum("nij,nj->ni", D, graphs.x), atol=1e-10)
    det = torch.det(g)[graphs.batch]
    assert torch.allclose(out.q, graphs.q * det[:, None], atol=1e-12)


def test_rotating_molecule_positions_by_hand(molecules64):
    R = SO3().sample(1, torch.Generator().manual_seed(0))
    t = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    spec = Spec(fields={"pos": "1o"})
    moved = E3().act((R, t), molecules64, spec)
    assert torch.allclose(moved.pos, molecules64.pos @ R[0].T + t, atol=1e-12)
    assert torch.equal(moved.x, molecules64.x)  # fields not in the Spec are left alone
    # distances are preserved: an independent sanity check of orthogonality
    dist = lambda p: (p[:, None] - p[None]).norm(dim=-1)  # noqa: E731
    assert torch.allclose(dist(moved.pos), dist(molecules64.pos), atol=1e-12)


def test_translation_moves_positions_only(graphs):
    t = torch.tensor([[0.0, 0.0, 3.0]], dtype=torch.float64)
    moved = Translation().act(t, graphs, SPEC)
    assert torch.allclose(moved.pos, graphs.pos + t) and torch.equal(moved.force, graphs.force)


def test_permutation_is_isomorphism_with_labels(graphs):
    p = Permutation().sample_like(graphs, torch.Generator().manual_seed(0))
    moved = Permutation().act(p, graphs, SPEC)
    assert torch.equal(moved.batch, graphs.batch)  # nodes never leave their graph
    for before, after in zip(graphs.to_data_list(), moved.to_data_list()):
        a = to_networkx(before, node_attrs=["label"], to_undirected=True)
        b = to_networkx(after, node_attrs=["label"], to_undirected=True)
        assert nx.is_isomorphic(a, b, node_match=lambda u, v: u["label"] == v["label"])
        assert not torch.equal(before.label, after.label) or before.num_nodes < 3
    # new[i] = old[p[i]] for node fields; the edge list keeps its order with relabelled ends.
    assert torch.equal(moved.x, graphs.x[p])
    assert torch.equal(p[moved.edge_index], graphs.edge_index)
    assert torch.equal(moved.edge_vec, graphs.edge_vec)


def test_sign_flip_flips_columns_per_graph(graphs):
    s = torch.tensor([[1.0, -1.0, 1.0], [-1.0, -1.0, 1.0], [1.0, 1.0, -1.0]], dtype=torch.float64)
    moved = SignFlip().act(s, graphs, SPEC)
    assert torch.equal(moved.eigvecs, graphs.eigvecs * s[graphs.batch])
    assert torch.equal(moved.pos, graphs.pos)


def test_act_output_rotates_vectors_and_leaves_invariants(graphs):
    g = SO3().sample_like(graphs)
    y = torch.randn(3, 4, dtype=torch.float64)
    spec = Spec(output="0e+1o")
    out = SO3().act_output(g, y, spec)
    assert torch.equal(out[:, :1], y[:, :1])
    assert torch.allclose(out[:, 1:], torch.einsum("bij,bj->bi", g, y[:, 1:]), atol=1e-12)
    node_y = torch.randn(graphs.num_nodes, 3, dtype=torch.float64)
    node_spec = Spec(output="1o", output_level="node")
    assert torch.allclose(
        SO3().act_output(g, node_y, node_spec, graphs.batch),
        torch.einsum("nij,nj->ni", g[graphs.batch], node_y),
        atol=1e-12,
    )
    p = Permutation().sample_like(graphs)
    assert torch.equal(Permutation().act_output(p, node_y, node_spec), node_y[p])
    assert torch.equal(Permutation().act_output(p, y, spec), y)


def test_bad_inputs_name_field_expected_and_actual(graphs):
    with pytest.raises(ValueError, match=r"field 'x'.*\(rows, 7\).*\(15, 5\)"):
        SO3().act(SO3().sample(1), graphs, Spec(fields={"x": "7x0e"}))
    with pytest.raises(ValueError, match=r"field 'missing'.*missing from the data"):
        SO3().act(SO3().sample(1), graphs, Spec(fields={"missing": "1o"}))
    with pytest.raises(ValueError, match=r"image.*expected H == W.*H=8, W=6"):
        Cyclic(4).act(torch.tensor([1]), torch.randn(2, 1, 8, 6), SPEC)
    with pytest.raises(ValueError, match=r"expected 1 group element or one per graph \(3\), got 2"):
        SO3().act(SO3().sample(2), graphs, SPEC)
    with pytest.raises(ValueError, match="irreps string"):
        Spec(fields={"x": "banana"})
    with pytest.raises(ValueError, match="model output: expected shape"):
        SO3().act_output(SO3().sample(1), torch.randn(3, 2), Spec(output="1o"))
    with pytest.raises(TypeError, match="images"):
        SO3().act(SO3().sample(1), torch.randn(2, 1, 4, 4), SPEC)
    with pytest.raises(ValueError, match="field 'eigvecs'"):
        SignFlip().sample_like(Data(x=torch.ones(2, 1)))


def test_actions_do_not_modify_input(graphs):
    before = graphs.clone()
    for group in GRAPH_GROUPS:
        group.act(group.sample_like(graphs), graphs, SPEC)
    assert _same(graphs, before)


def test_spec_round_trips_through_dict():
    spec = Spec(
        fields={"x": "16x0e", "force": "1o"},
        output="0e+1o",
        output_level="node",
        levels={"x": "node"},
    )
    assert Spec.from_dict(spec.to_dict()) == spec
    assert spec.irreps("pos") == o3.Irreps("1o")  # positions default to 1o
    points = Spec(output="0e+2x1o+1o", output_positions=(1, 2))
    assert Spec.from_dict(points.to_dict()) == points and points.to_dict()["output_positions"] == [1, 2]
    old = {k: v for k, v in points.to_dict().items() if k != "output_positions"}  # saved before the key existed
    assert Spec.from_dict(old).output_positions == ()


@pytest.mark.parametrize(
    "positions,match",
    [
        ((0,), r"entry 0 of output 1x0e\+1x1o must be points \(1o\), got 1x0e"),
        ((2,), r"expected indices of entries of output 1x0e\+1x1o \(0 to 1\), got 2"),
        ((-1,), r"\(0 to 1\), got -1"),
        (("1",), r"\(0 to 1\), got '1'"),
        ((1, 1), r"expected distinct indices, got \(1, 1\)"),
    ],
)
def test_output_positions_are_validated(positions, match):
    with pytest.raises(ValueError, match="Spec output_positions: .*" + match):
        Spec(output="0e+1o", output_positions=positions)
    with pytest.raises(ValueError, match="must be points"):
        Spec(output="1e", output_positions=(0,))  # a pseudovector is not a point


def test_quaternion_matrix_matches_e3nn_and_sampled_rotations_are_proper():
    q = torch.randn(64, 4, dtype=torch.float64)
    q = q / q.norm(dim=1, keepdim=True)
    assert torch.allclose(quaternion_matrix(q), o3.quaternion_to_matrix(q), atol=1e-12)
    R = SO3().sample(256, torch.Generator().manual_seed(0))
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=R.dtype).expand(256, 3, 3), atol=1e-12)
    assert torch.allclose(torch.det(R), torch.ones(256, dtype=R.dtype), atol=1e-12)
    # Haar measure: E[R] = 0 and, the representation being irreducible, E[(tr R)^2] = 1 (Schur orthogonality).
    sample = SO3().sample(20000, torch.Generator().manual_seed(1))
    trace = sample.diagonal(dim1=1, dim2=2).sum(-1)
    assert sample.mean(0).abs().max() < 0.02 and abs(float((trace**2).mean()) - 1) < 0.05
