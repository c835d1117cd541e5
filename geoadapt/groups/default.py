"""The symmetry to measure when none was named, read from a model's Spec and its inputs."""

from __future__ import annotations

from typing import Any

from geoadapt.groups.base import Group
from geoadapt.groups.euclidean import SO3
from geoadapt.groups.permutation import Permutation
from geoadapt.groups.planar import Cyclic
from geoadapt.spec import Spec
from geoadapt.structure import is_graph


def default_group(spec: Spec, inputs: Any) -> Group:
    """The symmetry to measure when none was named: SO3 if the Spec has positions, else permutations of
    graph nodes, else C4 for images."""
    if is_graph(inputs):
        return SO3() if spec.positions and all(p in inputs for p in spec.positions) else Permutation()
    return Cyclic(4) if getattr(inputs, "dim", lambda: 0)() == 4 else SO3()
