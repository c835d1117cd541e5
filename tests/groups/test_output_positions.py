"""Predicted points (``Spec.output_positions``) move with translations; vectors and scalars do not."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.nn import global_add_pool, global_mean_pool

from geoadapt import Spec
from geoadapt.groups import E3, O3, SE3, Group, Permutation, Translation
from geoadapt.structure import graph_index, num_graphs, repeat
from geoadapt.testing import assert_equivariant


def _relative(data: Batch) -> tuple[Tensor, Tensor, Tensor]:
    batch, n = graph_index(data), num_graphs(data)
    center = global_mean_pool(data.pos, batch, n)
    return data.pos - center[batch], center, batch


class CentroidModel(nn.Module):
    """Graph level ``0e + 1o + 1o``: a size, a dipole-like vector, and a predicted point (centroid + offset)."""

    spec = Spec(fields={"pos": "1o"}, output="0e+1o+1o", output_positions=(2,))

    def forward(self, data: Batch) -> Tensor:
        rel, center, batch = _relative(data)
        r = rel.norm(dim=1, keepdim=True)
        size = global_add_pool(r, batch, num_graphs(data))
        vector = global_add_pool(torch.tanh(r) * rel, batch, num_graphs(data))
        return torch.cat([size, vector, center + 0.3 * vector], dim=1)


class NodePositionModel(nn.Module):
    """Node level ``1o`` points: each atom pushed away from the centroid by ``tanh(|r_i|) r_i``."""

    spec = Spec(fields={"pos": "1o"}, output="1o", output_level="node", output_positions=(0,))

    def forward(self, data: Batch) -> Tensor:
        rel, _, _ = _relative(data)
        return data.pos + torch.tanh(rel.norm(dim=1, keepdim=True)) * rel


class RelativeVectorModel(NodePositionModel):
    """Returns ``r_i = x_i - centroid`` (a translation-invariant vector) but declares it a position."""

    def forward(self, data: Batch) -> Tensor:
        return _relative(data)[0]


def _max_error(model: nn.Module, data: Batch, group: Group, g) -> float:
    """``max |f(g·x) - ρ(g) f(x)|``, computed by hand."""
    spec = model.spec
    fgx = model(group.act(g, data, spec))
    node_graph = graph_index(data) if spec.output_level == "node" else None
    return float((fgx - group.act_output(g, model(data), spec, node_graph)).abs().max())


GROUPS = [E3(scale=5.0), SE3(scale=5.0), Translation(scale=5.0), Permutation() * E3(scale=5.0)]


@pytest.mark.parametrize("group", GROUPS, ids=repr)
@pytest.mark.parametrize("model", [CentroidModel(), NodePositionModel()], ids=lambda m: type(m).__name__)
def test_models_predicting_points_are_exactly_equivariant(model, group, molecules64):
    stacked = repeat(molecules64, 4)
    g = group.sample_copies(stacked, 4, torch.Generator().manual_seed(0))
    assert _max_error(model, stacked, group, g) < 1e-10
    assert_equivariant(model, molecules64, group, model.spec, atol=1e-10, rtol=0)


@pytest.mark.parametrize("model", [CentroidModel(), NodePositionModel()], ids=lambda m: type(m).__name__)
def test_undeclared_points_are_caught_by_translations(model, molecules64):
    # The same models with a Spec that forgets the points: translations then expose them.
    spec = Spec(fields=model.spec.fields, output=model.spec.output, output_level=model.spec.output_level)
    t = Translation(scale=5.0).sample(num_graphs(molecules64), torch.Generator().manual_seed(0))
    node_graph = graph_index(molecules64) if spec.output_level == "node" else None
    moved = model(Translation().act(t, molecules64, spec))
    assert (moved - Translation().act_output(t, model(molecules64), spec, node_graph)).abs().max() > 1.0


@pytest.mark.parametrize("group", [Translation(scale=5.0), E3(scale=5.0), SE3(scale=5.0)], ids=repr)
def test_relative_vectors_declared_as_points_are_not_equivariant(group, molecules64):
    model = RelativeVectorModel()
    stacked = repeat(molecules64, 2)
    g = group.sample_copies(stacked, 2, torch.Generator().manual_seed(0))
    t = g[1] if isinstance(g, tuple) else g
    # f(g·x) - ρ(g) f(x) = -t at every node: the error is exactly the shift.
    assert _max_error(model, stacked, group, g) == pytest.approx(float(t.abs().max()), rel=1e-9)
    with pytest.raises(AssertionError, match=r"output 1x1o"):
        assert_equivariant(model, molecules64, group, model.spec)
    assert_equivariant(model, molecules64, O3(), model.spec)  # rotations alone are fine


def test_translation_adds_the_shift_to_point_blocks_only():
    spec = Spec(output="0e+1o+2x1o", output_positions=(2,))
    y = torch.randn(3, 10, dtype=torch.float64)
    t = torch.randn(3, 3, dtype=torch.float64)
    out = Translation().act_output(t, y, spec)
    assert torch.equal(out[:, :4], y[:, :4])
    assert torch.equal(out[:, 4:7], y[:, 4:7] + t) and torch.equal(out[:, 7:], y[:, 7:] + t)
    node = Spec(output="1o", output_level="node", output_positions=(0,))
    batch = torch.tensor([0, 0, 1, 2, 2])
    yn = torch.randn(5, 3, dtype=torch.float64)
    assert torch.equal(Translation().act_output(t, yn, node, batch), yn + t[batch])
    cloud = torch.randn(3, 4, 3, dtype=torch.float64)  # point-cloud node outputs (B, N, 3)
    assert torch.equal(Translation().act_output(t, cloud, node), cloud + t[:, None, :])
    assert torch.equal(Translation().act_output(t, y, Spec(output="0e+1o+2x1o")), y)  # nothing declared
    with pytest.raises(ValueError, match="batch: node-level outputs need the graph id"):
        Translation().act_output(t, yn, node)


def test_e3_rotates_points_then_shifts_them():
    spec = Spec(output="1o+1o", output_positions=(1,))
    R, t = E3().sample(4, torch.Generator().manual_seed(0))
    y = torch.randn(4, 6, dtype=torch.float64)
    out = E3().act_output((R, t), y, spec)
    assert torch.allclose(out[:, :3], torch.einsum("bij,bj->bi", R, y[:, :3]), atol=1e-12)
    assert torch.allclose(out[:, 3:], torch.einsum("bij,bj->bi", R, y[:, 3:]) + t, atol=1e-12)
