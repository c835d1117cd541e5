"""The constraint's multiplier under cooper's nuPI controller (checked against the recurrence written by hand, and
against plain dual ascent on a system that answers with a lag), and the early verdict on a bound."""

from __future__ import annotations

import math

import pytest
import torch

from geoadapt.groups import SO3
from geoadapt.regularizers import ConstrainedEquivarianceRegularizer, EquivarianceRegularizer
from geoadapt.regularizers.dual import LogMultiplier
from geoadapt.regularizers.forecast import BoundForecast
from geoadapt.spec import Spec

ERRORS = [1.0, 1.0, 0.4, -0.2, -0.8, 2.5, -3.0, 0.1]


def test_without_a_proportional_gain_it_is_plain_dual_ascent_in_log_space():
    dual = LogMultiplier(2.0, lr=0.1, kp=0.0, ema=0.0, bounds=(1e-4, 1e6))
    theta = math.log(2.0)
    for e in ERRORS:
        theta += 0.1 * min(max(e, -1.0), 1.0)
        assert dual.step(e) == pytest.approx(math.exp(theta), rel=1e-12)


def test_the_proportional_term_follows_the_nupi_recurrence():
    kp, nu, lr = 10.0, 0.9, 0.1
    dual = LogMultiplier(1.0, lr=lr, kp=kp, ema=nu, bounds=(1e-4, 1e6))
    theta, xi = 0.0, None
    for e in ERRORS:
        e = min(max(e, -1.0), 1.0)
        if xi is None:  # the first step is a plain step (cooper's SGD start); its smoothed error starts at 0
            theta, xi = theta + lr * e, 0.0
        else:
            theta += lr * (e + kp * (1 - nu) * (e - xi))
            xi = nu * xi + (1 - nu) * e
        assert dual.step(e) == pytest.approx(math.exp(theta), rel=1e-12)


def test_a_resumed_controller_continues_where_it_stopped():
    first = LogMultiplier(1.0, lr=0.1, kp=5.0, ema=0.5, bounds=(1e-4, 1e6))
    for e in ERRORS[:4]:
        first.step(e)
    second = LogMultiplier(1.0, lr=0.1, kp=5.0, ema=0.5, bounds=(1e-4, 1e6))
    second.load_state_dict(first.state_dict())
    assert [second.step(e) for e in ERRORS[4:]] == [first.step(e) for e in ERRORS[4:]]


def lagged_run(kp: float, ema: float, steps: int = 400) -> list[float]:
    """A model whose penalty answers the multiplier with a lag: each step it moves 5% of the way to ``c / λ``."""
    dual, penalty, epsilon, trace = LogMultiplier(1.0, 0.1, kp, ema, (1e-4, 1e6)), 0.05, 1e-3, []
    for _ in range(steps):
        penalty += 0.05 * (0.2 / dual.value - penalty)
        dual.step((penalty - 0.8 * epsilon) / epsilon)
        trace.append(penalty)
    return trace


def test_the_proportional_term_overshoots_less_than_plain_ascent():
    plain, pi = lagged_run(0.0, 0.0), lagged_run(10.0, 0.9)
    # Plain ascent keeps pushing after the penalty has crossed the target and sinks far below it; nuPI less so.
    assert min(pi) > 1.5 * min(plain)
    assert abs(pi[-1] - 8e-4) < 2e-4  # and it settles at the target


def test_the_forecast_says_met_on_track_or_will_miss_with_the_expected_miss():
    falling = BoundForecast()
    for epoch, value in enumerate([8e-3, 4e-3, 2e-3]):
        falling.add(epoch, value, 100.0 * 1.2**epoch)
    assert falling.outlook(1e-3, 5).state == "on track"  # halving every epoch: below 1e-3 in one more
    assert falling.outlook(1e-3, 0).state == "will miss"
    stuck = BoundForecast()
    for epoch, value in enumerate([3e-3, 3.1e-3, 3.2e-3]):
        stuck.add(epoch, value, 10.0 * 1.5**epoch)
    outlook = stuck.outlook(1e-3, 10)  # not falling: expected to stay at the geometric mean of the window
    assert outlook.state == "will miss" and outlook.miss == pytest.approx((3e-3 * 3.1e-3 * 3.2e-3) ** (1 / 3) - 1e-3)
    line = stuck.line("bound", 1e-3, 10, cap=1e6)
    assert "will NOT be met" in line and "keeps rising" in line and "0.0021 above" in line
    ramping = BoundForecast()  # the multiplier still growing 5x per epoch: it has not shown what it can do
    for epoch, value in enumerate([3e-3, 3.1e-3, 3.2e-3]):
        ramping.add(epoch, value, 10.0 * 5**epoch)
    assert ramping.outlook(1e-3, 10).state == "unknown"
    assert ramping.outlook(1e-3, 10, cap=10.0 * 5**2).state == "will miss"  # unless it sits at its cap
    wobble = BoundForecast()  # a dual ascent oscillating around its target: no trend, no alarm
    for epoch, value in enumerate([1.5e-3, 0.9e-3, 1.6e-3]):
        wobble.add(epoch, value, 1000.0)
    assert wobble.outlook(1e-3, 10).state == "unknown"
    met = BoundForecast()
    met.add(0, 5e-4, 1.0)
    assert met.outlook(1e-3, 3).state == "met"
    assert BoundForecast().line("bound", 1e-3, 3, cap=1e6).endswith("no held-out measurement yet")


def test_the_constrained_regularizer_gives_its_verdict_each_epoch():
    spec = Spec(fields={"pos": "1o"}, output="0e")
    reg = ConstrainedEquivarianceRegularizer(EquivarianceRegularizer(SO3(), spec), epsilon=1e-3)
    assert "no held-out measurement" in reg.verdict(10)
    for value in (5e-3, 5e-3, 5.2e-3):
        reg.multiplier.mul_(1.5)
        reg.end_epoch([value])
        reg.record(value)
    assert "will NOT be met" in reg.verdict(10) and "above" in reg.verdict(10)
    reg.record(5e-4)  # a later measurement of the same epoch (the restored weights) replaces the last
    assert "met so far" in reg.verdict(10)
    with pytest.raises(ValueError, match="dual_kp"):
        ConstrainedEquivarianceRegularizer(EquivarianceRegularizer(SO3(), spec), dual_kp=-1.0)
    with torch.no_grad():
        assert float(reg.multiplier) == pytest.approx(reg.dual.value, rel=1e-6) or reg.dual.steps == 0
