"""Intermediate features: outputs of named submodules recorded by forward hooks, and the irreps they carry."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from e3nn import o3
from torch import Tensor, nn

from geoadapt.spec import Spec
from geoadapt.structure import AnyData, is_graph


class Capture:
    """Forward hooks that record the outputs of named submodules of ``model`` (in call order) until :meth:`close`."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            raise ValueError(
                f"layers: expected submodule names of {type(model).__name__} "
                f"(e.g. {list(modules)[1:6]}), got unknown {missing}"
            )
        self.outputs: dict[str, list[Tensor]] = {n: [] for n in names}
        self.handles = [modules[n].register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, inputs: object, output: object) -> None:
            self.outputs[name].append(output[0] if isinstance(output, tuple) else output)

        return hook

    def mark(self) -> dict[str, int]:
        """How many outputs each submodule has recorded so far (to find the first of the next forward)."""
        return {n: len(v) for n, v in self.outputs.items()}

    def first_since(self, mark: Mapping[str, int]) -> dict[str, Tensor]:
        """The first output each submodule recorded after ``mark``: its features in one forward."""
        missing = [n for n, v in self.outputs.items() if len(v) <= mark[n]]
        if missing:
            raise ValueError(f"layers: expected submodules the model calls in its forward, got {missing} not called")
        return {n: v[mark[n]] for n, v in self.outputs.items()}

    def close(self) -> None:
        """Remove the hooks."""
        for h in self.handles:
            h.remove()


def layer_irreps(model: nn.Module, layers: Mapping[str, str | o3.Irreps | None]) -> dict[str, str | o3.Irreps | None]:
    """The irreps of each named feature: as given, else the submodule's ``irreps_out`` (e3nn), else ``None``
    (its channels then count as invariant scalars, :func:`feature_spec`). Nothing is written back to ``layers``."""
    modules = dict(model.named_modules()) if any(v is None for v in layers.values()) else {}
    resolved = {}
    for name, irreps in layers.items():
        if irreps is None and hasattr(modules.get(name), "irreps_out"):
            irreps = str(modules[name].irreps_out)
        resolved[name] = irreps
    return resolved


def feature_spec(irreps: str | o3.Irreps | None, features: Tensor, data: AnyData) -> Spec:
    """Spec of a captured feature tensor ``(rows, channels)``: its irreps (``None``: ``channels x 0e``), and node
    or graph level from its row count."""
    irreps = irreps or f"{features.shape[-1]}x0e"
    node_level = is_graph(data) and features.shape[0] == data.num_nodes
    return Spec(output=irreps, output_level="node" if node_level else "graph")
