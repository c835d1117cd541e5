"""Interatomic potentials: an energy model ``(B, 1)`` and its forces ``-dE/dpos`` ``(N, 3)``.

An energy model returns one invariant row per graph (``spec.output`` ``0e``, graph level), which
is what the equivariance machinery, the regularizers and the Trainer expect of any model. Forces
are a second, node-level output: :func:`potential` returns both (a model may supply its own
``potential(data)``; otherwise forces come from autograd on ``pos``), and :class:`Forces` is the
node-level view of the same model (``spec.output`` ``1o``), so the equivariance of forces is
measured like that of any other output: ``equivariance_error(Forces(model), batch, group, Forces(model).spec)``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from geoadapt.spec import Spec
from geoadapt.structure import GraphData


@dataclass
class PotentialOutput:
    """Energy ``(B, 1)`` (one row per graph) and forces ``(N, 3)`` (one row per atom)."""

    energy: Tensor
    forces: Tensor


def autograd_potential(model: nn.Module, data: GraphData) -> PotentialOutput:
    """``E = model(data)`` ``(B, 1)`` and ``F = -dE/dpos`` ``(N, 3)`` by autograd.

    Works in evaluation and under ``torch.no_grad()`` (gradients are switched on inside). When the
    caller records gradients, the forces keep their graph (``create_graph``), so a force loss can
    train the model; otherwise both outputs come back detached. ``pos`` is cast to the model's dtype.
    """
    create_graph = torch.is_grad_enabled()
    dtype = next(model.parameters()).dtype
    with torch.enable_grad():
        pos = data.pos.to(dtype)
        if not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        moved = copy.copy(data)
        moved.pos = pos
        energy = model(moved)
        if energy.dim() != 2 or energy.shape[1] != 1:
            raise ValueError(f"energy model output: expected shape (graphs, 1), got {tuple(energy.shape)}")
        (grad,) = torch.autograd.grad(
            energy.sum(), pos, create_graph=create_graph, allow_unused=True, materialize_grads=True
        )
    forces = -grad
    if not create_graph:
        energy, forces = energy.detach(), forces.detach()
    return PotentialOutput(energy, forces)


def potential(model: nn.Module, data: GraphData) -> PotentialOutput:
    """Energy and forces of ``model`` on ``data``: the model's own ``potential`` when it has one, else autograd."""
    own = getattr(model, "potential", None)
    if callable(own):
        return own(data)
    return autograd_potential(model, data)


class Forces(nn.Module):
    """The node-level force view of an energy model: ``Forces(model)(data)`` is ``(N, 3)``.

    Shares the wrapped model's parameters; its ``spec`` is the model's input Spec with output
    ``1o`` at node level, and its ``symmetry`` is the model's.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        spec: Spec = model.spec
        if spec.output != Spec(output="0e").output or spec.output_level != "graph":
            got = f"{spec.output} at {spec.output_level} level"
            raise ValueError(f"model spec output: expected a graph-level energy '1x0e', got {got}")
        self.model = model
        self.spec = Spec(
            fields=dict(spec.fields), output="1o", positions=spec.positions, output_level="node", levels=spec.levels
        )
        self.symmetry = getattr(model, "symmetry", None)

    def forward(self, data: GraphData) -> Tensor:
        return potential(self.model, data).forces
