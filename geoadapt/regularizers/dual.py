"""The Lagrange multiplier of a constraint, ascending in log space under cooper's nuPI controller.

``log λ`` is the controlled variable and the clipped relative violation the error signal: with ``kp = 0`` the
update is plain dual ascent, ``log λ += lr · e_t``; a proportional gain ``kp`` adds ``lr · kp · (ξ_t - ξ_{t-1})``
(``ξ``: the error smoothed with ``ema``), which lowers the multiplier as soon as the violation starts to fall,
before the integral overshoots (Sohrabi et al. 2024, "On PI controllers for updating Lagrange multipliers in
constrained optimization"). The controller is cooper-optim's :class:`cooper.optim.nuPI`; its one state
(``ξ``) is kept in a buffer here so that a resume state loads as plain tensors.
"""

from __future__ import annotations

import math

import torch
from cooper.optim import nuPI
from torch import nn


class LogMultiplier(nn.Module):
    """``λ = exp(θ)`` kept in ``[low, high]``; :meth:`step` moves ``θ`` by one nuPI step on an error in ``[-1, 1]``.

    Buffers: ``log_value`` (``θ``), ``smoothed_error`` (nuPI's ``ξ``) and ``steps`` (controller steps taken; ``ξ``
    means nothing before the first).
    """

    def __init__(self, initial: float, lr: float, kp: float, ema: float, bounds: tuple[float, float]) -> None:
        super().__init__()
        if not kp >= 0:
            raise ValueError(f"dual_kp: expected a proportional gain >= 0, got {kp}")
        if not 0 <= ema < 1:
            raise ValueError(f"dual_ema: expected a smoothing factor in [0, 1), got {ema}")
        self.bounds = (math.log(bounds[0]), math.log(bounds[1]))
        self.register_buffer("log_value", torch.tensor(math.log(initial), dtype=torch.float64))
        self.register_buffer("smoothed_error", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("steps", torch.tensor(0))
        # The controller works on a CPU parameter of its own, kept out of the module (a list is not registered): the
        # model's optimizer never sees it and the state dict holds only the two buffers.
        self._theta = [nn.Parameter(self.log_value.detach().cpu().clone(), requires_grad=False)]
        self._controller = nuPI(self._theta, lr=lr, Kp=kp, Ki=1.0, ema_nu=ema, maximize=True)

    @property
    def value(self) -> float:
        """``λ``."""
        return math.exp(float(self.log_value))

    def step(self, error: float) -> float:
        """One controller step on ``error`` (the relative violation, clipped to ``[-1, 1]``); returns the new ``λ``."""
        (theta,) = self._theta
        with torch.no_grad():
            theta.copy_(self.log_value)
        state = self._controller.state[theta]
        state.clear()
        if int(self.steps) > 0:
            state["xi"] = self.smoothed_error.detach().cpu().clone()
        theta.grad = torch.tensor(min(max(error, -1.0), 1.0), dtype=torch.float64)
        self._controller.step()
        theta.grad = None
        if "xi" in state:
            self.smoothed_error.copy_(state["xi"])
        self.steps += 1
        self.log_value.copy_(theta.detach().clamp(*self.bounds))
        return self.value

    def set(self, value: float) -> None:
        """Set ``λ`` (kept in the bounds); the controller's memory stays."""
        self.log_value.fill_(min(max(math.log(value), self.bounds[0]), self.bounds[1]))
