"""The first input a wrapped model sees, kept as the example its graph form is captured on when it is saved
(:mod:`geoadapt.models.portable`)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch_geometric.data import Batch

EXAMPLE_GRAPHS = 3  # graphs in the batch the forward is captured on: sizes of 0 or 1 would be fixed into the graph


def _example_of(data: Any) -> Any:
    """A detached CPU copy of (the first few graphs of) a model input, kept as the example to capture on."""
    if isinstance(data, Tensor):
        return data[:EXAMPLE_GRAPHS].detach().cpu().clone()
    graphs = data.to_data_list() if isinstance(data, Batch) else [data]
    kept = []
    for graph in graphs[:EXAMPLE_GRAPHS]:
        copied = graph.clone().cpu()
        kept.append(copied.apply(lambda t: t.detach()))
    return kept


class _KeepFirstInput:
    """Forward pre-hook that keeps a module's first input as its example (a class, not a closure: a module holding
    it still pickles whole with ``torch.save(model)``); a no-op once the example is kept."""

    def __call__(self, module: nn.Module, args: tuple) -> None:
        if not args or getattr(module, "_portable_example", None) is not None:
            return
        try:
            module._portable_example = _example_of(args[0])
        except (AttributeError, TypeError, RuntimeError):  # an input that is no graph or tensor: nothing to keep
            module._portable_example = None


def keep_example(module: nn.Module) -> None:
    """Keep the first input ``module`` is called with (a few graphs, detached, on the CPU) as the example its graph
    form is captured on when it is saved."""
    module._portable_example = None
    if not any(isinstance(hook, _KeepFirstInput) for hook in module._forward_pre_hooks.values()):
        module.register_forward_pre_hook(_KeepFirstInput())
