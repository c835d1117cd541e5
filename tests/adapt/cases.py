"""One working configuration per registered strategy, shared by the strategy and checkpoint tests."""

from __future__ import annotations

from typing import Any

from geoadapt.groups import SO3, Dihedral, Group

# strategy name -> (options, group) for a naive_gnn on molecules
GRAPH_CASES: dict[str, tuple[dict[str, Any], Group | None]] = {
    "finetune": ({}, None),
    "linear_probe": ({}, None),
    "freeze": ({"patterns": ("convs.0.*",)}, None),
    "soft_freeze": ({"lr_scales": {"convs.*": 0.1}}, None),
    "lora": ({"rank": 2}, None),
    "augment": ({}, SO3()),
    "group_average": ({"n_samples": 3}, SO3()),
    "frame_average": ({}, None),
    "canonicalize": ({}, SO3()),
    "parity_average": ({}, None),
}

# strategies whose structure differs on images, for a cnn on 8x8 images
IMAGE_CASES: dict[str, tuple[dict[str, Any], Group | None]] = {
    "lora": ({"rank": 2}, None),
    "group_average": ({}, Dihedral(4)),
    "canonicalize": ({}, Dihedral(4)),
}
