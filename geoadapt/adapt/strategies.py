"""Adaptation strategies a config can name: ``make_strategy("linear_probe", model, spec, ...)``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor, nn

from geoadapt.adapt.adapters import add_adapters
from geoadapt.adapt.augment import Augmentation
from geoadapt.adapt.canonicalize import Canonicalized3D, CanonicalizedImages
from geoadapt.adapt.freezing import apply_head_policy, finetune, freeze, linear_probe, soft_freeze_groups
from geoadapt.adapt.symmetrize import FrameAveraged, GroupAveraged
from geoadapt.groups import Cyclic, Dihedral, Group
from geoadapt.spec import Spec

STRATEGIES = (
    "finetune",
    "linear_probe",
    "freeze",
    "soft_freeze",
    "lora",
    "augment",
    "group_average",
    "frame_average",
    "canonicalize",
)


@dataclass
class Strategy:
    """What trains and how: the (possibly wrapped) model, optimizer groups, a batch transform, an extra loss."""

    name: str
    model: nn.Module
    lr_scales: dict[str, float] = field(default_factory=dict)
    batch_transform: Callable | None = None
    extra_loss: Callable[[], Tensor] | None = None
    notes: list[str] = field(default_factory=list)

    def param_groups(self, lr: float) -> list[dict]:
        """Optimizer groups over trainable parameters (soft-freeze scales applied)."""
        return soft_freeze_groups(self.model, lr, self.lr_scales)


def make_strategy(
    name: str,
    model: nn.Module,
    spec: Spec | None = None,
    group: Group | None = None,
    head: str = "head",
    head_policy: str = "reuse",
    patterns: tuple[str, ...] = (),
    lr_scales: dict[str, float] | None = None,
    rank: int = 4,
    targets: tuple[str, ...] = ("*",),
    n_samples: int | None = None,
    prior_weight: float = 1.0,
    proper: bool = False,
    in_dim: int | None = None,
) -> Strategy:
    """Wrap a pretrained ``model`` for adaptation by strategy ``name`` (one of :data:`STRATEGIES`).

    ``group`` is needed by ``augment``, ``group_average`` and (for images) ``canonicalize``; ``spec``
    defaults to ``model.spec``. The head policy (``reuse`` or ``new``) is applied first and logged.
    """
    if name not in STRATEGIES:
        raise ValueError(f"strategy: expected one of {STRATEGIES}, got {name!r}")
    spec = spec or model.spec
    notes = [apply_head_policy(model, head_policy, head)] if name != "canonicalize" or hasattr(model, head) else []
    finetune(model)
    if name == "finetune":
        return Strategy(name, model, notes=notes)
    if name == "linear_probe":
        trainable = linear_probe(model, head)
        return Strategy(
            name, model, notes=notes + [f"linear probe: {len(trainable)} head tensors train, backbone frozen"]
        )
    if name == "freeze":
        frozen = freeze(model, patterns)
        return Strategy(name, model, notes=notes + [f"frozen: {len(frozen)} tensors matching {list(patterns)}"])
    if name == "soft_freeze":
        return Strategy(name, model, lr_scales=dict(lr_scales or {}), notes=notes + [f"lr scales: {lr_scales}"])
    if name == "lora":
        wrapped = add_adapters(model, rank, targets)
        return Strategy(name, model, notes=notes + [f"low-rank adapters on {len(wrapped)} layers"])
    if group is None and name in ("augment", "group_average"):
        raise ValueError(f"strategy {name!r}: expected a group, got None")
    if name == "augment":
        return Strategy(
            name, model, batch_transform=Augmentation(group, spec), notes=notes + [f"augment with {group!r}"]
        )
    if name == "group_average":
        return Strategy(name, GroupAveraged(model, group, spec, n_samples), notes=notes + [f"average over {group!r}"])
    if name == "frame_average":
        return Strategy(name, FrameAveraged(model, spec, proper), notes=notes + ["PCA frame averaging"])
    if isinstance(group, (Cyclic, Dihedral)):
        wrapped = CanonicalizedImages(model, group.n)
    else:
        wrapped = Canonicalized3D(model, spec, in_dim or spec.irreps("x").dim)
    return Strategy(
        name,
        wrapped,
        extra_loss=lambda: prior_weight * wrapped.prior_loss(),
        notes=notes + [f"canonicalize (prior weight {prior_weight})"],
    )
