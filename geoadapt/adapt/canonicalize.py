"""``canonicalize``: a small equivariant network picks each input's pose; the model sees canonical inputs."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from geoadapt.adapt.base import Strategy, register_strategy
from geoadapt.adapt.canonicalizers import Canonicalized3D, CanonicalizedImages, check_image_group
from geoadapt.adapt.options import StrategyOptions
from geoadapt.groups import E3, O3, SO3, Dihedral, Group, ProductGroup


@dataclass(frozen=True)
class CanonicalizeOptions(StrategyOptions):
    """``prior_weight`` of the prior loss (poses near the pretraining frame); ``hidden`` width of the
    canonicalization network (default 32 on 3D graphs, 16 on images); ``in_dim``: its input width
    (node features, default: the dimension of Spec field ``x``; image channels, default 1)."""

    prior_weight: float = 1.0
    hidden: int | None = None
    in_dim: int | None = None


def has_reflections(group: Group | None) -> bool:
    """True when ``group`` (or a factor of it) contains reflections of space: O3, E3 or a dihedral group."""
    if group is None:
        return False
    if isinstance(group, ProductGroup):
        return any(has_reflections(f) for f in group.factors)
    if isinstance(group, E3):
        return not isinstance(group.rotations, SO3)
    return isinstance(group, Dihedral) or (isinstance(group, O3) and not isinstance(group, SO3))


@register_strategy
class Canonicalize(Strategy):
    """3D graphs (the Spec has positions): SE(3) canonicalization, or E(3) when ``group`` has reflections.
    Images: canonicalization over ``group`` (``Cyclic(n)`` / ``Dihedral(n)``, ``n`` dividing 4).
    Every parameter trains; the prior loss enters as ``extra_loss``."""

    name = "canonicalize"
    Options = CanonicalizeOptions
    uses_group = head_optional = True

    def check(self, model: nn.Module) -> None:
        if not self.spec.positions:
            if self.group is None:
                raise ValueError("strategy 'canonicalize' on images: expected a group (e.g. c4, d4), got None")
            check_image_group(self.group)
        elif self.options.in_dim is None and "x" not in self.spec.fields:
            raise ValueError(
                f"strategy 'canonicalize' option 'in_dim': expected an int (the Spec has no field 'x' "
                f"to take it from: {sorted(self.spec.fields)}), got None"
            )

    def build(self, model: nn.Module) -> nn.Module:
        options = self.options
        if self.spec.positions:
            in_dim = options.in_dim or self.spec.irreps("x").dim
            proper = not has_reflections(self.group)
            wrapped: nn.Module = Canonicalized3D(model, self.spec, in_dim, options.hidden or 32, proper=proper)
        else:
            wrapped = CanonicalizedImages(model, self.group, options.in_dim or 1, self.spec, options.hidden or 16)
        self.extra_loss = lambda: options.prior_weight * wrapped.prior_loss()
        return wrapped

    def describe(self) -> str:
        if self.spec.positions:
            kind = "E(3), reflections included" if has_reflections(self.group) else "SE(3)"
        else:
            kind = repr(self.group)
        return f"canonicalize ({kind}; prior weight {self.options.prior_weight})"
