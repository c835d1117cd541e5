"""The symmetrized value of a prediction: the model averaged over the group, as the group calls for it.

- A rotation group (SO(3), O(3), SE(3), E(3), alone or in a product) on 3D inputs: the frame average over PCA
  frames (:class:`~geoadapt.adapt.symmetrize.FrameAveraged`; rotations only for SO(3) / SE(3)), exact; or, for
  O(3) / E(3) on a model that declares rotation symmetry by construction (``symmetry`` naming SO3 or SE3), the
  parity average (:class:`~geoadapt.adapt.parity_average.ParityAveraged`), exact at twice a forward.
- Any other group: the average over the K transformed copies the equivariance error is measured on,
  ``mean_k ρ_out(g_k)^{-1} f(g_k · x)`` (no forward of its own; a Monte Carlo average for a continuous group).
"""

from __future__ import annotations

from torch import Tensor, nn

from geoadapt.equivariance import Comparison
from geoadapt.groups import E3, O3, SE3, SO3, Group, ProductGroup
from geoadapt.spec import Spec


def _factors(group: Group) -> list[Group]:
    return list(group.factors) if isinstance(group, ProductGroup) else [group]


def _rotations(group: Group) -> Group | None:
    """The rotation factor of ``group`` (SO(3), O(3), SE(3) or E(3)), or ``None``."""
    return next((f for f in _factors(group) if isinstance(f, (O3, E3))), None)


def _proper(rotation: Group) -> bool:
    return isinstance(rotation, (SO3, SE3)) or rotation.name == "SE3"


def symmetrizer(model: nn.Module, group: Group, spec: Spec) -> tuple[nn.Module | None, str]:
    """The exact symmetrization of ``model`` (which answers in target units) that ``group`` calls for, and how it
    averages; ``(None, how)`` when the average over the transformed copies is the one to take."""
    from geoadapt.adapt.parity_average import ParityAveraged
    from geoadapt.adapt.symmetrize import FrameAveraged

    rotation = _rotations(group)
    if rotation is None or not spec.positions:
        return None, f"mean over the transformed copies under {group!r}"
    symmetry = str(getattr(model, "symmetry", None) or getattr(getattr(model, "model", None), "symmetry", ""))
    if not _proper(rotation) and ("SO3" in symmetry or "SE3" in symmetry):
        return ParityAveraged(model, spec).eval(), "parity average (the model declares rotation symmetry)"
    proper = _proper(rotation)
    return FrameAveraged(model, spec, proper).eval(), f"frame average over {4 if proper else 8} PCA frames"


def copies_average(comparison: Comparison, group: Group, spec: Spec) -> Tensor:
    """``mean_k ρ_out(g_k)^{-1} f(g_k · x)`` over the copies of ``comparison`` (graph-level rows): ``(B, dim)``."""
    back = group.act_output(group.inverse(comparison.elements), comparison.fgx, spec)
    return back.reshape(comparison.copies, comparison.samples, -1).mean(0)
