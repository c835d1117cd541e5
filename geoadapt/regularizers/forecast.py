"""Whether a bound ``E[R] <= ε`` will hold at the end of training, forecast from the held-out measurements so far.

The measurements of the last ``window`` epochs are fitted by a straight line in log space; a falling trend is
extended to the end of training, a flat or rising one is kept at the window's geometric mean (the multiplier is
not expected to undo a trend it has not undone so far). A miss is forecast only when every measurement of the
window is above the bound (a dual ascent oscillates around its target, and one epoch above it is no trend), and
not while the multiplier still doubles every epoch, unless it sits at its cap: until it stops, it has not shown
what it can do. The multiplier's own trend says why a bound is missed: a
multiplier that keeps rising (or sits at its cap) while the error does not fall means the model cannot trade
more task loss for invariance fast enough; a falling multiplier with held-out error above ε means the training
batches meet the bound and held-out data does not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

RAMPING = 2.0  # a multiplier growing this much per epoch is still finding its level: no verdict yet


@dataclass
class Outlook:
    """A forecast: ``state`` is ``"met"`` (the last measurement holds), ``"on track"`` (above, but its trend
    reaches the bound in time), ``"will miss"`` or ``"unknown"`` (too few measurements); ``expected``: the
    forecast ``E[R]`` at the end; ``miss``: how far above the bound it is expected to end (0 unless missing)."""

    state: str
    measured: float
    expected: float
    miss: float
    epoch: int
    multiplier_trend: float  # per epoch, a factor (1: flat)


@dataclass
class BoundForecast:
    """Held-out measurements ``(epoch, E[R], multiplier)``, one per epoch (a repeated epoch replaces its entry)."""

    window: int = 3
    points: list[tuple[int, float, float]] = field(default_factory=list)

    def add(self, epoch: int, value: float, multiplier: float) -> None:
        """One epoch's measurement (NaN or infinite values are not measurements and are left out)."""
        if not math.isfinite(value):
            return
        value = max(value, 1e-300)  # an exactly equivariant model measures 0: kept on the log scale
        if self.points and self.points[-1][0] == epoch:
            self.points[-1] = (epoch, value, multiplier)
        else:
            self.points.append((epoch, value, multiplier))

    def outlook(self, bound: float, epochs_left: int, cap: float = math.inf) -> Outlook:
        """The forecast for ``epochs_left`` more epochs against ``bound`` (``cap``: the multiplier's upper bound)."""
        if not self.points:
            return Outlook("unknown", math.nan, math.nan, math.nan, -1, 1.0)
        epoch, last, _ = self.points[-1]
        recent = self.points[-self.window :]
        trend = _slope([(e, math.log(m)) for e, _, m in recent])
        if last <= bound:
            return Outlook("met", last, last, 0.0, epoch, math.exp(trend))
        ramping = math.exp(trend) >= RAMPING and self.points[-1][2] < cap * 0.999
        if len(recent) < self.window or any(v <= bound for _, v, _ in recent) or ramping:
            return Outlook("unknown", last, last, last - bound, epoch, math.exp(trend))
        slope = _slope([(e, math.log(v)) for e, v, _ in recent])
        level = sum(math.log(v) for _, v, _ in recent) / len(recent)
        expected = math.exp(math.log(last) + slope * max(epochs_left, 0)) if slope < 0 else math.exp(level)
        if expected <= bound:
            return Outlook("on track", last, expected, 0.0, epoch, math.exp(trend))
        return Outlook("will miss", last, expected, expected - bound, epoch, math.exp(trend))

    def line(self, name: str, bound: float, epochs_left: int, cap: float) -> str:
        """:meth:`outlook` as one line for a log (``cap``: the multiplier's upper bound, named when reached)."""
        o = self.outlook(bound, epochs_left, cap)
        head = f"{name} E[R] <= {bound:.3g}"
        if o.state == "unknown" and math.isnan(o.measured):
            return f"{head}: no held-out measurement yet"
        at = f"measured {o.measured:.3g} on the validation data after epoch {o.epoch}"
        if o.state == "met":
            return f"{head} met so far ({at})"
        if o.state == "unknown":
            return f"{head} not met yet ({at}); no verdict yet (the multiplier still rising, or a short record)"
        if o.state == "on track":
            return f"{head} on track ({at}, expected {o.expected:.3g} in {epochs_left} epochs)"
        multiplier = self.points[-1][2]
        if multiplier >= cap * 0.999:
            why = "the multiplier is at its cap"
        elif o.multiplier_trend > 1.05:
            why = f"the multiplier keeps rising ({o.multiplier_trend:.2g}x per epoch) and the error does not follow"
        else:
            why = "the training batches meet the bound and held-out data does not"
        return (
            f"{head} will NOT be met: {at}, expected {o.expected:.3g} at the end of training, "
            f"{o.miss:.3g} above ({why})"
        )


def _slope(points: list[tuple[int, float]]) -> float:
    """Least-squares slope of ``y`` against ``x`` (0 for fewer than two distinct ``x``)."""
    if len(points) < 2:
        return 0.0
    mx = sum(x for x, _ in points) / len(points)
    my = sum(y for _, y in points) / len(points)
    var = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / var if var else 0.0
