"""Adaptation strategies: fine-tuning, probes, freezing, adapters, augmentation, symmetrization, canonicalization."""

from geoadapt.adapt.adapters import IrrepsAdapter, LoRALinear, add_adapters
from geoadapt.adapt.augment import Augmentation
from geoadapt.adapt.canonicalize import Canonicalized3D, CanonicalizedImages
from geoadapt.adapt.freezing import apply_head_policy, finetune, freeze, linear_probe, soft_freeze_groups
from geoadapt.adapt.strategies import STRATEGIES, Strategy, make_strategy
from geoadapt.adapt.symmetrize import FrameAveraged, GroupAveraged, pca_frames

__all__ = [
    "STRATEGIES",
    "Augmentation",
    "Canonicalized3D",
    "CanonicalizedImages",
    "FrameAveraged",
    "GroupAveraged",
    "IrrepsAdapter",
    "LoRALinear",
    "Strategy",
    "add_adapters",
    "apply_head_policy",
    "finetune",
    "freeze",
    "linear_probe",
    "make_strategy",
    "pca_frames",
    "soft_freeze_groups",
]
