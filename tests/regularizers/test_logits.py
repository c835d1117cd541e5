"""The classifier's default penalty, standardized logits: what saturating or shrinking the logits does to it (nothing)
and to the divergences it replaced (lowers them), checked numerically through a real regularizer and by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from geoadapt.equivariance import CopyOutputs
from geoadapt.groups import SO3
from geoadapt.regularizers import EquivarianceRegularizer
from geoadapt.regularizers.logits import logit_spread, standardized_logit_distance
from geoadapt.spec import Spec


class Logits(nn.Module):
    """``scale * h(pos) + shift``: a small coordinate-reading classifier whose logits can be shifted and scaled."""

    def __init__(self, classes: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, classes)).double()
        self.scale = nn.Parameter(torch.tensor(1.0, dtype=torch.float64))
        self.shift = nn.Parameter(torch.zeros(classes, dtype=torch.float64))
        self.spec = Spec(fields={"pos": "1o"}, output=f"{classes}x0e")

    def forward(self, data):
        from torch_geometric.nn import global_mean_pool

        h = global_mean_pool(self.net(data.pos), data.batch)
        return self.scale * h + self.shift


def batch() -> Batch:
    generator = torch.Generator().manual_seed(1)
    return Batch.from_data_list(
        [Data(pos=torch.randn(5, 3, generator=generator, dtype=torch.float64)) for _ in range(8)]
    )


def penalty(model: Logits, distance: str) -> torch.Tensor:
    reg = EquivarianceRegularizer(SO3(), model.spec, distance=distance, batch_fraction=1.0).eval()
    return reg(model, batch(), generator=torch.Generator().manual_seed(2))  # weight 1: the penalty itself


@pytest.mark.parametrize("classes", [1, 2])
def test_neither_a_shift_nor_a_scale_of_the_logits_changes_it(classes):
    model = Logits(classes)
    base, base_js = penalty(model, "logit"), penalty(model, "js")
    with torch.no_grad():
        model.scale.fill_(3.0)
        shift = torch.full((classes,), -4.0, dtype=torch.float64)
        shift[0] = 4.0 if classes > 1 else -4.0
        model.shift.copy_(shift)  # every prediction moved to class 0, and saturated
    assert float(base) > 1e-4
    assert float(penalty(model, "logit")) == pytest.approx(float(base), rel=1e-9)
    assert float(penalty(model, "js")) < 0.2 * float(base_js)  # the divergence falls by saturating


@pytest.mark.parametrize("classes", [1, 2])
def test_no_gradient_towards_saturating_or_shrinking(classes):
    # The push each penalty gives the logits' common shift and scale: zero for standardized logits; the
    # Jensen-Shannon divergence is lowered by moving the logits to one side (saturation), a squared difference of
    # raw logits by shrinking them (both move predictions towards one class).
    model = Logits(classes)
    with torch.no_grad():
        model.shift.fill_(0.5)
    grads = {}
    for distance in ("logit", "js", "mse"):
        shift, scale = torch.autograd.grad(penalty(model, distance), [model.shift, model.scale])
        grads[distance] = (float(shift.abs().max()), float(scale))
    assert grads["logit"][0] < 1e-12 and abs(grads["logit"][1]) < 1e-12
    assert grads["js"][0] > 1e-6  # saturating lowers it
    assert grads["mse"][1] > 1e-6  # shrinking lowers it


def test_against_a_computation_by_hand():
    generator = torch.Generator().manual_seed(3)
    fx = torch.randn(6, 3, generator=generator, dtype=torch.float64)
    fgx = fx.repeat(2, 1) + 0.1 * torch.randn(12, 3, generator=generator, dtype=torch.float64)
    spec = Spec(fields={"pos": "1o"}, output="3x0e")
    data = Batch.from_data_list([Data(pos=torch.zeros(1, 3)) for _ in range(6)])
    reg = EquivarianceRegularizer(SO3(), spec, distance="logit", n_samples=2, batch_fraction=1.0)
    copies = reg.sample(data, torch.Generator().manual_seed(0), whole=True)
    comparison = CopyOutputs(data, copies, fx, fgx).compare(SO3(), spec)
    got = standardized_logit_distance(comparison, logit_spread(fx))
    centred = lambda z: z - z.mean(-1, keepdim=True)  # noqa: E731
    spread = (centred(fx) - centred(fx).mean(0)).pow(2).mean()
    by_hand = (centred(fgx) - centred(fx.repeat(2, 1))).pow(2).mean(-1).reshape(2, 6) / spread
    assert torch.allclose(got, by_hand, rtol=1e-12, atol=0)


def test_the_self_set_weight_stops_growing_once_the_logits_change_little():
    from geoadapt.regularizers.balance import ENOUGH

    grown, held = (
        EquivarianceRegularizer(SO3(), Spec(fields={"pos": "1o"}, output="0e"), distance="logit") for _ in "ab"
    )
    for reg in (grown, held):
        reg.balance(1.0, 1.0, penalty=0.5)  # first balance: weight = ratio
    start = grown.weight
    grown.balance(1.0, 1e-3, penalty=10 * ENOUGH["logit"])  # far from invariant: the weight grows
    held.balance(1.0, 1e-3, penalty=0.1 * ENOUGH["logit"])  # a tenth of the spread is reached: it does not
    assert grown.weight > 2 * start and held.weight == pytest.approx(start)
    held.balance(1.0, 1e3, penalty=0.1 * ENOUGH["logit"])  # but it may fall
    assert held.weight < start
    mse = EquivarianceRegularizer(SO3(), Spec(fields={"pos": "1o"}, output="0e"), distance="mse")
    mse.balance(1.0, 1.0, penalty=1e-6)
    mse.balance(1.0, 1e-3, penalty=1e-6)  # regression keeps its growing weight
    assert mse.weight > 2 * mse.balance_ratio
