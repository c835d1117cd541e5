"""The e3nn network: channel-wise ("uvu") or fully connected products, exact E(3) and permutation equivariance."""

from __future__ import annotations

import pytest
import torch
from e3nn import o3
from torch_geometric.data import Batch

from geoadapt.checkpoints import load, save
from geoadapt.dtypes import default_dtype
from geoadapt.groups import E3, Permutation
from geoadapt.metrics import equivariance_error
from geoadapt.models import build
from geoadapt.models.e3nn_gnn import ChannelwiseTensorProduct, channelwise_tensor_product

CONFIGS = [
    {"output": "0e"},
    {"output": "0e+1o+2e"},
    {"output": "1o", "output_level": "node"},
    {"output": "0e+1o+2e", "tensor_product": "fully_connected"},
]


def _name(config: dict) -> str:
    return "/".join(
        [config["output"], config.get("output_level", "graph"), config.get("tensor_product", "channelwise")]
    )


def _model(**config):
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        return build("e3nn_gnn", **config).eval()


def _random_orthogonal(generator: torch.Generator, reflect: bool) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=generator, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))  # Haar-distributed, det ±1
    if (torch.det(q) < 0) != reflect:
        q = -q
    return q


def test_default_messages_are_channelwise_with_few_per_edge_weights():
    model = _model(hidden="16x0e+8x1o+4x2e")
    for layer in model.layers:
        tp = layer.tp
        assert {ins.connection_mode for ins in tp.instructions} == {"uvu"}
        # One weight per channel and path: the input channels of each instruction, nothing more.
        assert tp.weight_numel == sum(tp.irreps_in[ins.i_in1].mul for ins in tp.instructions)
        assert layer.radial[-1].weight.shape[-1] == tp.weight_numel
    reference = _model(hidden="16x0e+8x1o+4x2e", tensor_product="fully_connected")
    assert {ins.connection_mode for ins in reference.layers[1].tp.instructions} == {"uvw"}
    assert model.layers[1].tp.weight_numel * 10 < reference.layers[1].tp.weight_numel


def test_channelwise_product_reaches_every_hidden_irrep_and_only_those():
    tp, mid = channelwise_tensor_product(o3.Irreps("4x0e+2x1o"), o3.Irreps("1x0e+1x1o+1x2e"), o3.Irreps("3x0e+2x1o"))
    assert {ir for _, ir in mid} == {o3.Irrep("0e"), o3.Irrep("1o")}
    assert mid.dim == tp.irreps_out.dim and mid == tp.irreps_out.simplify()
    with pytest.raises(ValueError, match=r"expected 2x1o x 1x0e to reach some irrep of 3x0e, got none"):
        channelwise_tensor_product(o3.Irreps("2x1o"), o3.Irreps("1x0e"), o3.Irreps("3x0e"))


@pytest.mark.parametrize(
    "irreps",
    [
        ("16x0e", "1x0e+1x1o+1x2e", "16x0e+8x1o+4x2e"),
        ("3x0e+2x1e+2x1o+1x2o", "1x0e+1x1o+1x2e+1x3o", "4x0e+2x1o+2x1e+3x2e+1x2o+1x3o"),
    ],
)
def test_batched_channelwise_product_equals_e3nns(irreps):
    with default_dtype(torch.float64):
        reference, _ = channelwise_tensor_product(*map(o3.Irreps, irreps))
        fast = ChannelwiseTensorProduct(*map(o3.Irreps, irreps))
    generator = torch.Generator().manual_seed(0)
    x1, x2, weight = (
        torch.randn(40, dim, generator=generator, dtype=torch.float64)
        for dim in (reference.irreps_in1.dim, reference.irreps_in2.dim, reference.weight_numel)
    )
    expected = reference(x1, x2, weight)
    assert fast.weight_numel == reference.weight_numel and fast.irreps_out == reference.irreps_out.simplify()
    assert expected.abs().max() > 1.0 and (fast(x1, x2, weight) - expected).abs().max() < 1e-12


@pytest.mark.parametrize("config", CONFIGS, ids=_name)
def test_exactly_equivariant_by_the_metric(molecules64, config):
    model = _model(**config)
    generator = torch.Generator().manual_seed(0)
    out = model(molecules64)
    assert out.abs().max() > 1e-3  # a vanishing output would be equivariant for nothing
    assert equivariance_error(model, molecules64, E3(), model.spec, 4, generator).max() < 1e-10
    assert equivariance_error(model, molecules64, Permutation(), model.spec, 4, generator).max() < 1e-10


@pytest.mark.parametrize("reflect", [False, True], ids=["rotation", "reflection"])
@pytest.mark.parametrize("config", CONFIGS, ids=_name)
def test_exactly_equivariant_by_hand(molecules64, config, reflect):
    """Move the atoms with ``R`` and ``t`` and shuffle them; the outputs follow through e3nn's ``D_from_matrix``."""
    model = _model(**config)
    generator = torch.Generator().manual_seed(1)
    rotation = _random_orthogonal(generator, reflect)
    shift = torch.randn(3, generator=generator, dtype=torch.float64)
    graphs = molecules64.to_data_list()
    moved, orders = [], []
    for graph in graphs:
        order = torch.randperm(graph.num_nodes, generator=generator)
        new = graph.clone()
        new.x, new.pos = graph.x[order], graph.pos[order] @ rotation.T + shift
        new.edge_index = torch.argsort(order)[graph.edge_index]
        moved.append(new)
        orders.append(order)
    out, out_moved = model(molecules64), model(Batch.from_data_list(moved))
    with default_dtype(torch.float64):  # e3nn builds Wigner matrices from constants in the default dtype
        expected = out @ model.spec.output.D_from_matrix(rotation).T
    if config.get("output_level") == "node":
        offsets = torch.cumsum(torch.tensor([0] + [g.num_nodes for g in graphs[:-1]]), 0)
        expected = expected[torch.cat([o + s for o, s in zip(orders, offsets)])]
    assert out.abs().max() > 1e-3
    assert (out_moved - expected).abs().max() < 1e-10
    if reflect and config["output"] == "0e+1o+2e":
        # The 1o block flips sign under inversion where 2e does not: the test sees parity.
        assert (out_moved[:, 1:4] + out[:, 1:4] @ rotation.T).abs().max() > 1e-3


def test_bonds_as_edges_are_equivariant_too(molecules64):
    model = _model(output="0e+1o", edges="bonds")
    assert equivariance_error(model, molecules64, E3(), model.spec, 4, torch.Generator().manual_seed(0)).max() < 1e-10


@pytest.mark.parametrize("config", CONFIGS, ids=_name)
def test_output_shapes(molecules, config):
    model = build("e3nn_gnn", **config)
    rows = molecules.num_nodes if config.get("output_level") == "node" else molecules.num_graphs
    assert model(molecules).shape == (rows, o3.Irreps(config["output"]).dim)


@pytest.mark.parametrize("tensor_product", ["channelwise", "fully_connected"])
def test_checkpoint_round_trip_keeps_outputs(molecules, tmp_path, tensor_product):
    torch.manual_seed(0)
    model = build(
        "e3nn_gnn", output="0e+1o", hidden="8x0e+4x1o+2x2e", num_layers=3, tensor_product=tensor_product
    ).eval()
    path = save(model, tmp_path / "e3nn.pt")
    loaded = load(path, arch="e3nn_gnn").eval()
    assert loaded.config["tensor_product"] == tensor_product
    assert torch.equal(model(molecules), loaded(molecules))
    assert str(loaded.spec.output) == "1x0e+1x1o" and loaded.symmetry == "Permutation x E3"


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="edges: expected 'radius' or 'bonds', got 'knn'"):
        build("e3nn_gnn", edges="knn")
    with pytest.raises(
        ValueError, match=r"tensor_product: expected one of \['channelwise', 'fully_connected'\], got 'x'"
    ):
        build("e3nn_gnn", tensor_product="x")


@pytest.mark.parametrize("tensor_product", ["channelwise", "fully_connected"])
def test_every_parameter_gets_a_gradient_and_moves(molecules, tensor_product):
    torch.manual_seed(0)
    model = build("e3nn_gnn", tensor_product=tensor_product)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model(molecules).pow(2).sum().backward()
    assert all(
        p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0 for p in model.parameters()
    )
    optimizer.step()
    assert sum(not torch.equal(a, b) for a, b in zip(before, model.parameters())) == len(before)
