"""Adaptation strategies: fine-tuning, probes, freezing, adapters, augmentation, symmetrization, canonicalization.

``STRATEGIES`` maps each name to its :class:`Strategy` class (whose ``Options`` dataclass lists the
options); ``make_strategy(name, model, spec, group, **options)`` applies one.
"""

from geoadapt.adapt.adapters import IrrepsAdapter, LoRALinear, add_adapters
from geoadapt.adapt.augment import Augment, Augmentation
from geoadapt.adapt.base import STRATEGIES, Strategy, attach_steps, register_strategy
from geoadapt.adapt.canonicalize import Canonicalize, CanonicalizeOptions
from geoadapt.adapt.canonicalizers import Canonicalized3D, CanonicalizedImages
from geoadapt.adapt.finetune import Finetune
from geoadapt.adapt.frame_average import FrameAverage, FrameAverageOptions
from geoadapt.adapt.freeze import Freeze, FreezeOptions
from geoadapt.adapt.freezing import apply_head_policy, freeze, linear_probe, soft_freeze_groups
from geoadapt.adapt.group_average import GroupAverage, GroupAverageOptions
from geoadapt.adapt.linear_probe import LinearProbe
from geoadapt.adapt.lora import LoRA, LoRAOptions
from geoadapt.adapt.options import StrategyOptions, parse_options
from geoadapt.adapt.parity_average import ParityAverage, ParityAveraged
from geoadapt.adapt.soft_freeze import SoftFreeze, SoftFreezeOptions
from geoadapt.adapt.strategies import make_strategy
from geoadapt.adapt.symmetrize import FrameAveraged, GroupAveraged, pca_frames
from geoadapt.models.predictor import base_model  # where strategies record their steps; models need it too

__all__ = [
    "STRATEGIES",
    "Augment",
    "Augmentation",
    "Canonicalize",
    "CanonicalizeOptions",
    "Canonicalized3D",
    "CanonicalizedImages",
    "Finetune",
    "FrameAverage",
    "FrameAverageOptions",
    "FrameAveraged",
    "Freeze",
    "FreezeOptions",
    "GroupAverage",
    "GroupAverageOptions",
    "GroupAveraged",
    "IrrepsAdapter",
    "LinearProbe",
    "LoRA",
    "LoRALinear",
    "LoRAOptions",
    "ParityAverage",
    "ParityAveraged",
    "SoftFreeze",
    "SoftFreezeOptions",
    "Strategy",
    "StrategyOptions",
    "add_adapters",
    "apply_head_policy",
    "attach_steps",
    "base_model",
    "freeze",
    "linear_probe",
    "make_strategy",
    "parse_options",
    "pca_frames",
    "register_strategy",
    "soft_freeze_groups",
]
