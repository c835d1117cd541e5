"""The one error definition: absolute per block in output units, relative to the outputs' spread."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from geoadapt import Spec
from geoadapt.equivariance import STACK_NODES, block_scale, forward_plan, output_rows
from geoadapt.groups import E3, SO2, SO3, Cyclic, Permutation
from geoadapt.metrics import (
    equivariance_error,
    error_vs_angle,
    measure_equivariance,
    prediction_consistency,
    transformed_outputs,
)
from geoadapt.models import build
from tests.conftest import FlatImageModel, VectorPointNet


class CenteredSum(nn.Module):
    """``Σ_i (x_i - mean x)``: exactly equivariant and exactly zero; float round-off is all it outputs."""

    def forward(self, x):
        return (x - x.mean(1, keepdim=True)).sum(1)


class Offset(nn.Module):
    """``f(x) + c``: the same equivariance, shifted outputs."""

    def __init__(self, model: nn.Module, offset: float) -> None:
        super().__init__()
        self.model, self.offset = model, offset

    def forward(self, x):
        return self.model(x) + self.offset


class FirstPointX(nn.Module):
    """Not rotation invariant: a scalar read off the raw coordinates, ``(B, 1)``."""

    def forward(self, x):
        return x[:, :1, 0] * 3.0 + x[:, 1:2, 1]


def centrosymmetric_clouds(n: int, points: int, generator: torch.Generator) -> torch.Tensor:
    """Point clouds ``{p, -p}`` (inversion symmetric about their centroid), ``(n, 2 * points, 3)``."""
    half = torch.randn(n, points, 3, generator=generator)
    return torch.cat([half, -half], dim=1)


def test_zero_outputs_of_an_exact_float32_model_score_as_exact():
    x = torch.randn(16, 10, 3, generator=torch.Generator().manual_seed(0)) * 5
    m = measure_equivariance(CenteredSum(), x, SO3(), Spec(output="1o"), n_samples=4)
    # Round-off (about 1e-6 here) against the floor of sqrt(eps) output units; the per-sample norm gave 0.17.
    assert m.error < 1e-2 and m.score > 0.99
    assert m.absolute_by_block()["1x1o"] < 1e-5  # and the round-off is visible in output units


def test_dipole_zero_by_symmetry_does_not_explode():
    gen = torch.Generator().manual_seed(1)
    symmetric = centrosymmetric_clouds(6, 5, gen)
    asymmetric = torch.randn(6, 10, 3, generator=gen)
    clouds = torch.cat([symmetric, asymmetric])
    model = VectorPointNet()  # w(|x - c|) (x - c), summed: zero for the symmetric clouds, float32
    err = equivariance_error(model, clouds, SO3(), Spec(output="1o"), n_samples=4)
    assert float(err[:, :6].max()) < 1e-4  # zero-by-symmetry outputs: per-sample norms gave 1e5
    assert float(err.max()) < 1e-4


def test_an_offset_does_not_hide_a_broken_symmetry():
    x = torch.randn(32, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    spec = Spec(output="0e")
    plain = equivariance_error(FirstPointX(), x, SO3(), spec, 4, torch.Generator().manual_seed(0))
    shifted = equivariance_error(Offset(FirstPointX(), 1000.0), x, SO3(), spec, 4, torch.Generator().manual_seed(0))
    assert float(plain.mean()) > 0.3
    assert torch.allclose(plain, shifted, rtol=1e-8)  # the per-sample norm dropped it from 0.6 to 0.002


def test_absolute_error_is_in_output_units_and_relative_error_is_unitless():
    x = torch.randn(20, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    spec = Spec(output="0e")

    class Scaled(nn.Module):
        def forward(self, x):
            return 10.0 * FirstPointX()(x)

    one = measure_equivariance(FirstPointX(), x, SO3(), spec, 3, torch.Generator().manual_seed(0))
    ten = measure_equivariance(Scaled(), x, SO3(), spec, 3, torch.Generator().manual_seed(0))
    assert torch.allclose(ten.absolute, 10 * one.absolute) and torch.allclose(ten.relative, one.relative)
    # By hand: |f(g x) - f(x)| with the same rotations.
    c = transformed_outputs(FirstPointX(), x, SO3(), spec, 3, torch.Generator().manual_seed(0))
    assert torch.allclose(one.absolute[..., 0].reshape(-1), (c.fgx - c.fx.repeat(3, 1)).abs().reshape(-1))


def test_blocks_are_measured_separately():
    class HalfBroken(nn.Module):
        """An exact vector next to a scalar that reads raw coordinates: only the 0e block is broken."""

        def forward(self, x):
            rel = x - x.mean(1, keepdim=True)
            return torch.cat([x[:, 0, :1], rel.sum(1) + rel[:, :1].sum(1)], dim=-1)

    x = torch.randn(10, 7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    m = measure_equivariance(HalfBroken(), x, SO3(), Spec(output="0e+1o"), n_samples=4)
    assert m.blocks == ["1x0e", "1x1o"]
    by_block = m.absolute_by_block()
    assert by_block["1x1o"] < 1e-12 < 1e-2 < by_block["1x0e"]


def test_scale_is_pooled_over_batches_so_batching_does_not_change_errors():
    images = torch.randn(12, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    model, spec = FlatImageModel().double(), Spec(output="3x0e")
    whole = equivariance_error(model, images, Cyclic(4), spec, n_samples=None)
    parts = equivariance_error(model, [images[:5], images[5:]], Cyclic(4), spec, n_samples=None)
    assert torch.allclose(whole, parts, rtol=1e-10)


def test_block_scale_centres_scalars_only_and_has_a_floor():
    fx = torch.tensor([[1000.0, 1.0, 0.0, 0.0], [1002.0, -1.0, 0.0, 0.0]], dtype=torch.float64)
    scale = block_scale(fx, Spec(output="0e+1o").output)
    assert scale[0] == pytest.approx(1.0)  # spread of 1000 and 1002 about their mean, not 1001
    assert scale[1] == pytest.approx((2 / 6) ** 0.5)  # vectors are not centred
    zeros = block_scale(torch.zeros(4, 1), Spec(output="0e").output)
    assert float(zeros[0]) == pytest.approx(torch.finfo(torch.float32).eps ** 0.5)
    single = block_scale(torch.tensor([[3.0]], dtype=torch.float64), Spec(output="0e").output)
    assert float(single[0]) == pytest.approx(3.0)  # one row has no spread: its size is the scale


def test_a_given_scale_replaces_the_spread():
    x = torch.randn(8, 5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    m = measure_equivariance(FirstPointX(), x, SO3(), Spec(output="0e"), 2, torch.Generator().manual_seed(0), scale=2)
    assert torch.allclose(m.relative, m.absolute[..., 0] / 2)
    with pytest.raises(ValueError, match="scale: expected one positive number"):
        measure_equivariance(FirstPointX(), x, SO3(), Spec(output="0e"), scale=[1.0, 2.0])


def test_error_vs_angle_uses_the_same_definition(molecules64):
    model = build("naive_gnn").double()
    angles = torch.tensor([0.3, 1.2])
    by_angle = error_vs_angle(model, molecules64, model.spec, angles)
    for i, angle in enumerate(angles):
        elements = angle.to(torch.float64).expand(molecules64.num_graphs)
        c = transformed_outputs(model.eval(), molecules64, SO2(), model.spec, 1, elements=elements)
        expected = c.relative_error(block_scale(c.fx, model.spec.output)).mean()
        assert float(by_angle[i]) == pytest.approx(float(expected), rel=1e-10)


def test_one_logit_classifier_consistency_sees_flipped_predictions():
    x = torch.randn(64, 6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    spec = Spec(output="0e")
    consistency = prediction_consistency(FirstPointX(), x, SO3(), spec, n_samples=4)
    assert consistency < 0.9  # argmax of one logit was always class 0: consistency 1.0

    class Invariant(nn.Module):
        def forward(self, x):
            return (x - x.mean(1, keepdim=True)).norm(dim=-1).mean(1, keepdim=True) - 1.0

    assert prediction_consistency(Invariant(), x, SO3(), spec, n_samples=4) == 1.0


def test_scalar_outputs_shaped_b_are_accepted_for_one_dimensional_outputs(molecules64):
    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = build("naive_gnn").double()

        def forward(self, data):
            return self.model(data)[:, 0]

    err = equivariance_error(Flat(), molecules64, Permutation(), Spec(output="0e"), n_samples=2)
    assert err.shape == (2, molecules64.num_graphs) and float(err.max()) < 1e-10
    with pytest.raises(ValueError, match=r"model output: expected shape \(rows, 3\)"):
        output_rows(torch.zeros(4), Spec(output="1o"))


def test_separate_forwards_run_one_copy_at_a_time_and_agree_with_stacking(molecules64):
    model = build("naive_gnn").double()
    sizes = []
    model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].num_graphs))
    stacked = measure_equivariance(
        model, molecules64, SO3(), model.spec, 3, torch.Generator().manual_seed(0), stack=True
    )
    assert sizes == [4 * molecules64.num_graphs]
    sizes.clear()
    apart = measure_equivariance(
        model, molecules64, SO3(), model.spec, 3, torch.Generator().manual_seed(0), stack=False
    )
    assert sizes == [molecules64.num_graphs] * 4  # f(x), then each copy in a forward of the batch's size
    assert torch.allclose(stacked.relative, apart.relative, rtol=1e-9)


class NodeOrderVectors(nn.Module):
    """Node-level ``1o`` output that reads the edges and, on purpose, each node's place in its graph: not
    permutation-equivariant, so a copy whose edges were renumbered wrongly gives different numbers."""

    def forward(self, data):
        src, dst = data.edge_index
        messages = (data.pos[src] - data.pos[dst]) * data.x[src, :1]
        out = torch.zeros_like(data.pos).index_add_(0, dst, messages)
        place = torch.arange(data.num_nodes, dtype=data.pos.dtype) - data.ptr[data.batch]
        return out + 0.1 * place[:, None] * data.pos


def test_forward_plan_spreads_copies_under_the_node_budget(molecules64):
    class Budget(nn.Module):
        stack_nodes = 0

    model, n = Budget(), molecules64.num_nodes
    assert forward_plan(model, molecules64, 5, stack=True) == [5]
    assert forward_plan(model, molecules64, 5, stack=False) == [0, 1, 1, 1, 1, 1]
    for budget, plan in [(6 * n, [5]), (2 * n + 1, [1, 2, 2]), (3 * n, [2, 3]), (n, [0, 1, 1, 1, 1, 1])]:
        model.stack_nodes = budget
        assert forward_plan(model, molecules64, 5) == plan, budget
    model.stack_nodes = 2 * n + 1
    assert forward_plan(model, molecules64, 4) == [0, 2, 2]  # the batch alone costs no extra forward here
    assert forward_plan(nn.Linear(2, 2), torch.zeros(1000, 2), 5) == [5]  # tensors: one forward
    for bad in (0, None, 2.5):
        model.stack_nodes = bad
        with pytest.raises(ValueError, match=rf"stack_nodes: expected an int >= 1 \(nodes per forward\), got {bad}"):
            forward_plan(model, molecules64, 5)
    assert STACK_NODES > 20 * n  # the default stacks small batches whole


class PooledNodeOrder(NodeOrderVectors):
    """The same per graph (a graph-level ``1o`` output: the sum over its nodes)."""

    def forward(self, data):
        out = super().forward(data)
        return torch.zeros(data.num_graphs, 3, dtype=out.dtype).index_add_(0, data.batch, out)


@pytest.mark.parametrize("group", [Permutation(), E3(), Permutation() * SO3()], ids=repr)
@pytest.mark.parametrize("level", ["node", "graph"])
@pytest.mark.parametrize("budget,forwards", [(2, 4), (4, 2)], ids=["batch alone", "batch with copies"])
def test_copies_spread_over_forwards_give_the_stacked_numbers(molecules64, group, level, budget, forwards):
    """The automatic plan (several forwards, copies cut out of one moved batch) against one stacked forward,
    same elements: equal errors in float64, and every forward stays under the model's node budget. A budget
    of 2 batches runs the batch alone ([0, 2, 2, 2]); 4 batches stack it with the first copies ([3, 3])."""
    model = NodeOrderVectors() if level == "node" else PooledNodeOrder()
    spec = Spec(fields={"pos": "1o", "x": f"{molecules64.x.shape[1]}x0e"}, output="1o", output_level=level)
    nodes = []
    model.register_forward_pre_hook(lambda module, args: nodes.append(args[0].num_nodes))
    stacked = measure_equivariance(model, molecules64, group, spec, 6, torch.Generator().manual_seed(1), stack=True)
    model.stack_nodes = budget * molecules64.num_nodes + (budget == 2)
    nodes.clear()
    spread = measure_equivariance(model, molecules64, group, spec, 6, torch.Generator().manual_seed(1))
    assert len(nodes) == forwards and max(nodes) <= model.stack_nodes and sum(nodes) == 7 * molecules64.num_nodes
    assert float(stacked.relative.min()) > 1e-3  # the model is not equivariant: there is something to compare
    torch.testing.assert_close(spread.relative, stacked.relative, rtol=1e-12, atol=0)
    torch.testing.assert_close(spread.absolute, stacked.absolute, rtol=1e-12, atol=0)
