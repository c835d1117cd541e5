"""Equivariance metrics against independent routes, on real molecules, point clouds and images."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geoadapt import Spec
from geoadapt.dtypes import default_dtype
from geoadapt.equivariance import measured_rows, output_rows
from geoadapt.groups import E3, O3, SO2, SO3, Cyclic, Dihedral, Permutation, SignFlip, Translation
from geoadapt.metrics import (
    equivariance_error,
    equivariance_score,
    group_accuracy,
    group_averaged_accuracy,
    prediction_consistency,
    worst_case_accuracy,
)
from geoadapt.models import build
from geoadapt.structure import num_graphs, repeat
from tests.conftest import FlatImageModel, InvariantPointNet, PooledImageModel, VectorPointNet


def _e3nn(**config) -> nn.Module:
    with default_dtype(torch.float64):
        return build("e3nn_gnn", **config)


class CountingModel(nn.Module):
    """Counts forward calls of the wrapped model."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.calls = model, 0

    def forward(self, data):
        self.calls += 1
        return self.model(data)


@pytest.mark.parametrize("group", [SO3(), O3(), E3(), Translation(), Permutation(), Permutation() * E3()], ids=repr)
@pytest.mark.parametrize("config", [{}, {"output": "0e+1o+2e"}, {"output": "1o", "output_level": "node"}])
def test_e3nn_model_is_equivariant(molecules64, group, config):
    model = _e3nn(**config)
    err = equivariance_error(model, molecules64, group, model.spec, n_samples=3)
    copies = 4 if group.num_cosets == 2 else 3  # rounded up so that both parities of O(3) are measured
    assert err.shape == (copies, num_graphs(molecules64))
    assert err.max() < 1e-10


def test_gin_is_permutation_invariant_and_naive_model_is_not_rotation_invariant(molecules64):
    gin = build("gin").double()
    assert equivariance_error(gin, molecules64, Permutation(), gin.spec).max() < 1e-10
    naive = build("naive_gnn").double()
    assert equivariance_error(naive, molecules64, Permutation(), naive.spec).max() < 1e-10
    assert equivariance_error(naive, molecules64, SO3(), naive.spec).mean() > 1e-2


def test_one_forward_pass_for_all_copies(molecules):
    model = CountingModel(build("gin"))
    equivariance_error(model, molecules, Permutation() * SO3(), build("gin").spec, n_samples=16)
    assert model.calls == 1


def test_batched_error_equals_looped_reference(molecules64):
    # Independent route: one forward per (copy, graph), each molecule rotated alone by hand, and the error
    # definition written out: |f(g x) - f(x)| / spread of f(x) over the molecules (1x0e output).
    model = build("naive_gnn").double()
    spec, group, K = model.spec, SO3(), 4
    batched = equivariance_error(model, molecules64, group, spec, K, torch.Generator().manual_seed(7))
    elements = group.sample_like(repeat(molecules64, K), torch.Generator().manual_seed(7))
    graphs = molecules64.to_data_list()
    from torch_geometric.data import Batch

    model.eval()
    with torch.no_grad():
        fx = torch.cat([model(Batch.from_data_list([g])) for g in graphs])
        spread = (fx - fx.mean()).pow(2).mean().sqrt()
        for k in range(K):
            for b, graph in enumerate(graphs):
                moved = Batch.from_data_list([graph])
                moved.pos = moved.pos @ elements[k * len(graphs) + b].T
                ref = (model(moved) - fx[b]).abs().squeeze() / spread
                assert torch.allclose(batched[k, b], ref, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("group", [SO3(), O3(), E3(), Permutation(), Permutation() * E3(), Cyclic(3)], ids=repr)
def test_point_cloud_models(group):
    x = torch.randn(5, 12, 3, dtype=torch.float64)
    spec0, spec1 = Spec(output="2x0e"), Spec(output="1o")
    assert equivariance_error(InvariantPointNet().double(), x, group, spec0).max() < 1e-10
    assert equivariance_error(VectorPointNet().double(), x, group, spec1).max() < 1e-10
    node = Spec(output="1o", output_level="node")
    assert equivariance_error(VectorPointNet(node_level=True).double(), x, group, node).max() < 1e-10


def test_point_cloud_vector_outputs_are_checked_not_ignored():
    x = torch.randn(4, 10, 3, dtype=torch.float64)
    # Declaring the equivariant vector output as invariant must show a large error.
    assert equivariance_error(VectorPointNet().double(), x, SO3(), Spec(output="3x0e")).min() > 1e-2


@pytest.mark.parametrize("group", [Cyclic(4), Dihedral(4)], ids=repr)
def test_image_models(group):
    images = torch.randn(8, 1, 8, 8, dtype=torch.float64)
    spec = Spec(output="3x0e")
    pooled, flat = PooledImageModel().double(), FlatImageModel().double()
    assert equivariance_error(pooled, images, group, spec, n_samples=None).max() < 1e-12
    assert equivariance_error(flat, images, group, spec, n_samples=None).mean() > 1e-2
    assert prediction_consistency(pooled, images, group, spec, n_samples=None) == 1.0
    assert equivariance_score(pooled, images, group, spec) == pytest.approx(1.0)
    assert 0.0 < equivariance_score(flat, images, group, spec) < 1.0


def test_so2_on_images_reports_interpolation_error_for_invariant_model():
    images = torch.randn(4, 1, 16, 16, dtype=torch.float64)
    err = equivariance_error(PooledImageModel().double(), images, SO2(), Spec(output="3x0e"), n_samples=8)
    assert err.max() > 1e-6  # resampling is approximate, and the metric shows it


def test_group_accuracy_of_a_one_logit_classifier_reads_the_sign():
    class Corners(torch.nn.Module):
        """One logit that a half turn negates: top-left minus bottom-right pixel."""

        def forward(self, images):
            return images[:, 0, :1, 0] - images[:, 0, -1:, -1]

    images = torch.randn(40, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    labels = (images[:, 0, 0, 0] > images[:, 0, -1, -1]).long()  # what the upright model predicts
    result = group_accuracy(Corners(), images, labels, Cyclic(4), Spec(output="0e"))
    manual = [float(((Corners()(torch.rot90(images, k, dims=(-2, -1)))[:, 0] > 0).long() == labels).float().mean())
              for k in range(4)]  # fmt: skip
    assert result.per_element == pytest.approx(manual)
    assert manual[0] == 1.0 and manual[2] == 0.0  # argmax of one logit read every prediction as class 0


def test_group_accuracy_matches_a_loop_over_elements():
    torch.manual_seed(0)
    images = torch.randn(20, 1, 8, 8)
    labels = torch.randint(0, 3, (20,))
    model, spec, group = FlatImageModel(), Spec(output="3x0e"), Dihedral(4)
    result = group_accuracy(model, images, labels, group, spec)
    manual = []
    for k, f in group.elements().tolist():
        moved = torch.rot90(images.flip(-1) if f else images, k, dims=(-2, -1))
        manual.append(float((model(moved).argmax(-1) == labels).float().mean()))
    assert result.per_element == pytest.approx(manual)
    assert group_averaged_accuracy(model, images, labels, group, spec) == pytest.approx(sum(manual) / 8)
    assert worst_case_accuracy(model, images, labels, group, spec) == pytest.approx(min(manual))


def test_sign_flip_error_seen_only_by_models_reading_eigenvectors(molecules64):
    data = molecules64.clone()
    data.eigvecs = torch.randn(data.num_nodes, 4, dtype=torch.float64)
    with_pe = build("gin", pe="eigvecs", pe_dim=4).double()
    without = build("gin").double()
    assert equivariance_error(with_pe, data, SignFlip(), with_pe.spec).mean() > 1e-3
    assert equivariance_error(without, data, SignFlip(), without.spec).max() < 1e-12


def test_classifier_consistency_on_graphs(molecules):
    model = build("gin", out_dim=3)
    assert prediction_consistency(model, molecules, Permutation(), model.spec) == 1.0


def test_iterable_of_batches_and_training_mode_restored(molecules):
    model = build("gin")
    model.train()
    err = equivariance_error(model, [molecules, molecules], Permutation(), model.spec, n_samples=2)
    assert err.shape == (2, 2 * num_graphs(molecules)) and model.training


def test_wrong_output_width_is_reported(molecules):
    model = build("gin", out_dim=2)
    with pytest.raises(ValueError, match=r"model output: expected shape \(rows, 3\)"):
        equivariance_error(model, molecules, SO3(), Spec(output="1o"))


@pytest.mark.parametrize("output_level", ["graph", "node"])
def test_measuring_forwards_cut_under_a_node_budget_give_the_same_outputs(molecules64, output_level):
    """A model with ``split_nodes`` runs a large batch as several runs of consecutive graphs: the same rows as
    one forward (graph- and node-level outputs), more forwards, and the same error in the end."""
    with default_dtype(torch.float64):
        model = build("naive_gnn") if output_level == "graph" else _NodeNaive()
    spec = model.spec
    data = repeat(molecules64, 4, spec)  # 20 molecules
    whole = output_rows(model(data), spec)
    calls = []
    model.register_forward_hook(lambda module, args, out: calls.append(args[0].num_graphs))
    model.split_nodes = 60
    cut = measured_rows(model, data, spec)
    assert len(calls) > 1 and sum(calls) == num_graphs(data)
    torch.testing.assert_close(cut, whole, rtol=1e-12, atol=1e-12)
    error = equivariance_error(model, data, SO3(), spec, n_samples=3, generator=torch.Generator().manual_seed(0))
    model.split_nodes = None
    plain = equivariance_error(model, data, SO3(), spec, n_samples=3, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(error, plain, rtol=1e-9, atol=1e-12)
    model.split_nodes = "400"  # not a node count
    with pytest.raises(ValueError, match="split_nodes"):
        measured_rows(model, data, spec)


class _NodeNaive(nn.Module):
    """Node-level outputs that read raw coordinates (not rotation invariant)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(3, 2)
        self.spec = Spec(fields={"pos": "1o"}, output="2x0e", output_level="node")

    def forward(self, data) -> torch.Tensor:
        return self.linear(data.pos)
