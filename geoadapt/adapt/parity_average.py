"""``parity_average``: the model averaged with its mirror image through the origin, exactly O(3) from SO(3).

For the inversion ``P = -I``, ``f_P(x) = (f(x) + ρ_out(P) f(Px)) / 2``: an energy (``0e``) becomes
``(E(x) + E(-x)) / 2`` and its forces, by the chain rule, ``(F(x) + P^T F(Px)) / 2 = (F(x) - F(-x)) / 2``.
O(3) is SO(3) times ``{I, P}`` and ``P`` commutes with every rotation, so a rotation-equivariant model
becomes equivariant under all of O(3), exactly (a sum of the same two terms in either order), at twice
the cost of a forward. Unlike a group average over random rotations, nothing is sampled.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from geoadapt.adapt.base import Strategy, register_strategy
from geoadapt.groups import O3
from geoadapt.models.potential import PotentialOutput, potential
from geoadapt.spec import Spec
from geoadapt.structure import AnyData, graph_index, is_graph, num_graphs, repeat


def _mean_of_two(out: Tensor) -> Tensor:
    first, second = out.reshape(2, -1, *out.shape[1:])
    return (first + second) / 2


class ParityAveraged(nn.Module):
    """``(f(x) + ρ_out(P) f(-x)) / 2`` with ``x`` and ``-x`` in one stacked forward; see the module docstring.

    ``potential(data)`` averages the inner model's energies ``(B, 1)`` and its forces ``(N, 3)`` mapped
    back (``(F(x) - F(-x)) / 2``), whether the inner model's forces come from autograd or its own head.
    """

    def __init__(self, model: nn.Module, spec: Spec) -> None:
        super().__init__()
        if not spec.positions:
            raise ValueError(f"parity average: expected a Spec with positions (3D inputs), got {spec.positions}")
        self.model, self.spec, self.group = model, spec, O3()
        symmetry = getattr(model, "symmetry", None)
        self.symmetry = symmetry.replace("SE3", "E3").replace("SO3", "O3") if isinstance(symmetry, str) else symmetry

    def _stacked(self, data: AnyData) -> tuple[AnyData, Tensor]:
        n = num_graphs(data)
        signs = torch.cat([torch.ones(n), -torch.ones(n)]).to(torch.float64)
        elements = signs[:, None, None] * torch.eye(3, dtype=torch.float64)
        return self.group.act(elements, repeat(data, 2), self.spec), elements

    def forward(self, data: AnyData) -> Tensor:
        """The averaged output, shaped like the inner model's."""
        stacked, elements = self._stacked(data)
        out = self.model(stacked)
        node_graph = graph_index(stacked) if is_graph(stacked) else None
        # Each element is its own inverse (I and -I).
        return _mean_of_two(self.group.act_output(elements, out, self.spec, node_graph))

    def potential(self, data: AnyData) -> PotentialOutput:
        """Energy ``(B, 1)`` and forces ``(N, 3)`` of the averaged model."""
        stacked, elements = self._stacked(data)
        out = potential(self.model, stacked)
        forces = out.forces * elements[graph_index(stacked), 0, 0, None].to(out.forces.dtype)
        return PotentialOutput(_mean_of_two(out.energy), _mean_of_two(forces))


@register_strategy
class ParityAverage(Strategy):
    """Wraps the model in :class:`ParityAveraged`; every parameter trains (except those the model had frozen)."""

    name = "parity_average"

    def check(self, model: nn.Module) -> None:
        if not self.spec.positions:
            raise ValueError(
                f"strategy 'parity_average': expected a Spec with positions (3D graphs), got {self.spec.positions}"
            )

    def build(self, model: nn.Module) -> nn.Module:
        return ParityAveraged(model, self.spec)

    def describe(self) -> str:
        return "parity average: f(x) and its mirror image f(-x) averaged (exact O(3) from SO(3), 2x cost)"
