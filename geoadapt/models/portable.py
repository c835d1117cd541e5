"""Your own class, saved so it loads anywhere: the graph form of a wrapped model, stored in its checkpoint.

A checkpoint of a model declared with :func:`~geoadapt.models.wrap` names its class, which a process that cannot
import it (another machine, a colleague without your module) cannot rebuild. Beside the class path, the checkpoint
can hold the model's forward as a graph of ATen operators (:mod:`geoadapt.models.op_graph`), captured by
``torch.export`` on a batch the model has seen (:func:`keep_example`, which ``wrap`` installs): tensors and plain
data, read with ``weights_only=True`` like the rest of the file. Loading prefers the class (``builder=``, a class
registered in the process, or ``trust_code=True`` with the class importable); only where none of those applies is
the graph form rebuilt, as an :class:`~geoadapt.models.op_graph.OpGraph` whose state dict is the model's.

The graph form is the whole saved model (adapters and wrappers of its strategies included) in evaluation mode: it
predicts, measures and fine-tunes (its parameters train), but has no methods of your class, and dropout and batch
norm act as in evaluation. ``torch.export`` captures a forward only when no size is read from tensor values:
``global_add_pool(h, data.batch)`` reads the number of graphs from ``batch.max()`` and is refused, where
``global_add_pool(h, data.batch, size=data.num_graphs)`` exports. When the capture fails, the checkpoint records
why, and loading without the class says so and what to pass instead.

Hooks (two lines in :mod:`geoadapt.checkpoints`): ``save`` adds ``"portable": portable_form(model)`` to the
payload; ``load`` starts with ``payload = in_place_of_class(read(path), builder, trust_code)``. The file is read
with ``weights_only=True`` first (:func:`geoadapt.serialization.safe_load`), so a graph form is only ever lists,
strings, numbers and tensors; :class:`~geoadapt.models.op_graph.OpGraph` then checks every operator name against
core ATen before building anything.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch

from geoadapt.models import custom
from geoadapt.models.examples import EXAMPLE_GRAPHS, keep_example  # noqa: F401  (keep_example: part of the hooks)
from geoadapt.models.op_graph import OpGraph, UnsafeGraphError, graph_to_record
from geoadapt.models.predictor import base_model
from geoadapt.models.registry import register

log = logging.getLogger("geoadapt")
ARCH = "op_graph"  # the architecture a checkpoint is rebuilt as from its graph form
_PREFIX = "model."  # parameters of the exported wrapper (``_TensorInputs.model``)


register(ARCH)(OpGraph)


class _TensorInputs(nn.Module):
    """``model`` called on a batch made of named tensors: the form ``torch.export`` takes."""

    def __init__(self, model: nn.Module, fields: list[str]) -> None:
        super().__init__()
        self.model, self.fields = model, fields

    def forward(self, *tensors: Tensor) -> Tensor:
        if self.fields == ["input"]:
            return self.model(tensors[0])
        return self.model(Batch(**dict(zip(self.fields, tensors))))


def _batch(example: Any) -> tuple[Any, list[str], tuple]:
    """The capture batch (at least ``EXAMPLE_GRAPHS`` graphs), its tensor fields and their dynamic dimensions."""
    from torch.export import Dim

    if isinstance(example, Tensor):
        tiled = example.repeat(-(-EXAMPLE_GRAPHS // example.shape[0]), *([1] * (example.dim() - 1)))
        return tiled, ["input"], ({0: Dim.DYNAMIC},)
    graphs = [example[i % len(example)] for i in range(max(EXAMPLE_GRAPHS, len(example)))]
    batch = Batch.from_data_list(graphs)
    fields = sorted({k for k in batch.keys() if isinstance(batch[k], Tensor)} | {"ptr"})
    # The dimension each field grows along when graphs are added (PyG's own batching rule): the one left free.
    dims = tuple({0 if k == "ptr" else batch.__cat_dim__(k, batch[k]) % batch[k].dim(): Dim.DYNAMIC} for k in fields)
    return batch, fields, dims


@contextlib.contextmanager
def _quiet_torch() -> Iterator[None]:
    """torch's loggers at ERROR and its standard error kept while capturing: a forward that cannot be captured makes
    torch.export log shape notes and print the partial graph; the checkpoint records why in one line instead
    (``portable["error"]``)."""
    names = [n for n in logging.root.manager.loggerDict if n == "torch" or n.startswith("torch.")]
    loggers = [logging.getLogger(n) for n in names]  # torch sets levels on its child loggers: each one, not the root
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _capture(model: nn.Module, example: Any) -> dict[str, Any]:
    """The graph record of ``model`` captured on ``example`` and checked against it on two batch sizes."""
    batch, fields, dims = _batch(example)
    inputs = tuple(batch if fields == ["input"] else batch[k] for k in fields)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), _quiet_torch():
            warnings.simplefilter("ignore", FutureWarning)  # torch.export's own deprecation notices, not the user's
            wrapper = _TensorInputs(model, fields)
            program = torch.export.export(wrapper, inputs, dynamic_shapes=(dims,), strict=False).run_decompositions()
        state = {k: v for k, v in model.state_dict(keep_vars=True).items()}
        record = graph_to_record(program, fields, _PREFIX, state)
        rebuilt = OpGraph(record)
        rebuilt.load_state_dict(model.state_dict())
        with torch.no_grad():
            for check in (batch, _smaller(batch)):
                expected, got = model(check), rebuilt(check)
                if not torch.allclose(expected, got, rtol=1e-4, atol=1e-6):
                    raise UnsafeGraphError("the captured graph does not reproduce the model's outputs")
    finally:
        model.train(was_training)
    return record


def _smaller(batch: Any) -> Any:
    """The batch without its last sample: other sizes, to check no size was fixed into the graph."""
    if isinstance(batch, Tensor):
        return batch[:-1]
    return Batch.from_data_list(batch.to_data_list()[:-1])


def portable_form(model: nn.Module) -> dict[str, Any] | None:
    """The save hook: the graph form of a wrapped model (whole, as adapted), or ``None`` for a registered
    architecture (rebuilt by name); ``{"error": why}`` when it cannot be captured."""
    base = base_model(model)
    if getattr(base, "arch", None) != custom.ARCH:
        return None
    example = getattr(base, "_portable_example", None)
    if example is None:
        return {"error": "the model was saved before it saw a batch (the graph form is captured on one)"}
    try:
        return {"graph": _capture(model, copy.deepcopy(example))}
    except Exception as err:  # torch.export raises many kinds; the checkpoint records which, and loading says it
        return {"error": _reason(err)}


def _reason(err: Exception) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if "data-dependent" in str(err) or "GuardOnDataDependent" in type(err).__name__:
        return (
            "torch.export could not capture the forward: it reads a size from tensor values (pass sizes such as "
            f"global_add_pool(h, data.batch, size=data.num_graphs)) ({type(err).__name__}: {first[:200]})"
        )
    return f"torch.export could not capture the forward ({type(err).__name__}: {first[:200]})"


def _class_usable(config: dict[str, Any], builder: Callable | None, trust_code: bool) -> bool:
    """Whether the class path (the first choice) rebuilds the model here, without importing anything untrusted."""
    path = str(config.get("class"))
    if builder is not None or path in custom.REGISTERED:
        return True
    if not trust_code:
        return False
    try:
        custom._trusted_class(path, trust_code=True)
    except (ValueError, TypeError):
        return False
    return True


def in_place_of_class(
    payload: dict[str, Any], builder: Callable[..., nn.Module] | None = None, trust_code: bool = False
) -> dict[str, Any]:
    """The load hook: ``payload`` as it is, unless it is a wrapped model whose class cannot be used here and that
    holds a graph form: then the payload that rebuilds the graph form (architecture ``op_graph``, no strategy steps
    to re-attach: they are in the graph). Without a graph form, one line says why and what to pass instead."""
    if payload.get("arch") != custom.ARCH or _class_usable(payload["config"], builder, trust_code):
        return payload
    form = payload.get("portable") or {}
    path = payload["config"].get("class")
    if "graph" not in form:
        if trust_code:  # the class was allowed but cannot be imported: rebuilding it says why
            return payload
        why = form.get("error", "the checkpoint holds no graph form (written before geoadapt stored one)")
        if str(path).startswith("__main__:"):  # a class of a script: no import finds it, whatever the trust
            how = "register the class in the script that loads it (geoadapt.models.register_class), or pass "
            how += "load(path, builder=...); the command line cannot rebuild it"
        else:
            how = "allow it for a file you trust with load(path, trust_code=True) (CLI: trust_code=true), register "
            how += "the class (geoadapt.models.register_class), or pass load(path, builder=...)"
        raise ValueError(
            f"model class: the checkpoint asks to import and call {path!r} to rebuild the model, which runs code "
            f"from outside geoadapt, and has no graph form to rebuild it from instead: {why}; {how}"
        )
    log.info("checkpoint: %s is not registered here; rebuilt from its graph form (ATen operators)", path)
    config = {"graph": form["graph"]}
    return {**payload, "arch": ARCH, "config": config, "adaptations": [], "class": path}
