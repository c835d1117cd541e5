"""A model's forward as a graph of ATen operators, stored as plain data, and the module that runs it.

:func:`graph_to_record` turns the graph ``torch.export`` captured (after ``run_decompositions``: functional core
ATen) into lists, strings and numbers: each node names its operator (``"aten.addmm.default"``) and its arguments
(other nodes, numbers, dtypes, devices). :class:`OpGraph` rebuilds a module from that record without running any
code the record holds: every operator name is looked up in ``torch.ops.aten`` and must be a core ATen operator (the
tensor operators of PyTorch's export opset, which compute tensors from tensors and touch nothing else; no file, no
Python), or one of a few integer operations on sizes (``operator.add``, ``torch.sym_max``, ...). Nothing is passed to
``eval``, ``exec``, ``import`` or an unpickler. Written by hand because ``torch.export.load`` does not promise this:
it falls back to a full unpickler and parses shape expressions with ``sympy.sympify`` (``eval``).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

FORMAT = "geoadapt-op-graph"
VERSION = 1
# Operators on sizes (Python ints) that export graphs use besides ATen: shape arithmetic and comparisons.
OPERATORS = ("add", "sub", "mul", "floordiv", "truediv", "mod", "neg", "pow", "getitem", "eq", "ne", "lt", "le", "gt",
             "ge", "and_", "or_", "not_")  # fmt: skip
SIZE_FUNCTIONS = ("sym_max", "sym_min", "sym_sum", "sym_not", "sym_float", "sym_int", "sym_ite")
# Assertions on sizes that export graphs carry (not tagged core): they check, compute nothing.
ASSERTIONS = ("_assert_scalar.default", "sym_constrain_range_for_size.default", "_assert_tensor_metadata.default")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class UnsafeGraphError(ValueError):
    """A graph record names an operator outside the allowed set: it is refused before anything runs."""


def operator_name(target: Any) -> str:
    """The stored name of a graph node's target: ``aten.<op>.<overload>``, ``operator.<fn>`` or ``torch.<fn>``."""
    if isinstance(target, torch._ops.OpOverload):
        namespace, name = target._schema.name.split("::")
        return f"{namespace}.{name}.{target._overloadname}"
    module = getattr(target, "__module__", None)
    name = getattr(target, "__name__", "")
    if module in ("_operator", "operator") and name in OPERATORS:
        return f"operator.{name}"
    if name in SIZE_FUNCTIONS:
        return f"torch.{name}"
    raise UnsafeGraphError(f"graph node target: expected an ATen operator or a size operation, got {target!r}")


def resolve_operator(name: str) -> Any:
    """The callable a stored operator name stands for; :class:`UnsafeGraphError` for anything not allowed."""
    parts = name.split(".")
    if not all(_NAME.match(p) and not p.startswith("__") for p in parts):
        raise UnsafeGraphError(f"graph operator: expected a plain dotted name, got {name!r}")
    if parts[0] == "operator" and len(parts) == 2 and parts[1] in OPERATORS:
        return getattr(operator, parts[1])
    if parts[0] == "torch" and len(parts) == 2 and parts[1] in SIZE_FUNCTIONS:
        return getattr(torch, parts[1])
    if parts[0] == "aten" and len(parts) == 3:
        packet = getattr(torch.ops.aten, parts[1], None)
        target = getattr(packet, parts[2], None) if isinstance(packet, torch._ops.OpOverloadPacket) else None
        if isinstance(target, torch._ops.OpOverload) and (
            torch.Tag.core in target.tags or f"{parts[1]}.{parts[2]}" in ASSERTIONS
        ):
            return target
    raise UnsafeGraphError(f"graph operator: expected a core ATen operator or a size operation, got {name!r}")


def encode(value: Any) -> Any:
    """A node argument as plain data (nodes by name; dtypes, devices, layouts and memory formats by name)."""
    if isinstance(value, torch.fx.Node):
        return {"node": value.name}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": value.type}
    if isinstance(value, torch.layout):
        return {"layout": str(value).removeprefix("torch.")}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value).removeprefix("torch.")}
    if isinstance(value, tuple):
        return {"tuple": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise UnsafeGraphError(f"graph argument: expected tensors, numbers or names, got {type(value).__name__}")


def _torch_constant(kind: str, name: str, expected: type) -> Any:
    value = getattr(torch, name, None) if _NAME.match(name) and not name.startswith("_") else None
    if not isinstance(value, expected):
        raise UnsafeGraphError(f"graph argument {kind}: expected a torch {kind} name, got {name!r}")
    return value


def _check_arguments(value: Any, known: set[str], where: str) -> None:
    """Refuse arguments that name an unknown node or a torch constant that is not a dtype, layout or memory format."""
    if isinstance(value, list):
        for item in value:
            _check_arguments(item, known, where)
    elif isinstance(value, dict):
        ((kind, item),) = value.items()
        if kind == "node" and item not in known:
            raise UnsafeGraphError(f"graph node {where}: expected arguments computed before it, got node {item!r}")
        if kind == "tuple":
            _check_arguments(item, known, where)
        elif kind not in ("node", "device"):
            decode(value, {}, torch.device("cpu"))


def decode(value: Any, env: Mapping[str, Any], device: torch.device) -> Any:
    """Inverse of :func:`encode` at run time: nodes from ``env``; every device is ``device`` (the inputs')."""
    if isinstance(value, list):
        return [decode(v, env, device) for v in value]
    if not isinstance(value, dict):
        return value
    if "node" in value:
        return env[value["node"]]
    if "tuple" in value:
        return tuple(decode(v, env, device) for v in value["tuple"])
    if "device" in value:
        return device
    kinds = {"dtype": torch.dtype, "layout": torch.layout, "memory_format": torch.memory_format}
    ((kind, name),) = value.items()
    if kind not in kinds:
        raise UnsafeGraphError(f"graph argument: expected a node, a tuple or a torch name, got {sorted(value)}")
    return _torch_constant(kind, name, kinds[kind])


def graph_to_record(
    program: torch.export.ExportedProgram, fields: list[str], prefix: str, state: Mapping[str, Tensor]
) -> dict[str, Any]:
    """The plain-data record of an exported program whose user inputs are the batch fields ``fields`` (in order)
    and whose parameters and buffers are ``prefix + <name>`` for each ``<name>`` of the model's ``state`` dict."""
    inputs, constants, named = [], {}, iter(fields)
    for spec in program.graph_signature.input_specs:
        kind = spec.kind.name.lower()  # parameter, buffer, constant_tensor, user_input, ...
        target = spec.target.removeprefix(prefix) if spec.target else None
        if kind == "user_input":
            inputs.append({"name": spec.arg.name, "kind": "field", "target": next(named)})
        elif kind in ("parameter", "buffer") and target in state:
            inputs.append({"name": spec.arg.name, "kind": kind, "target": target})
        elif kind in ("buffer", "constant_tensor"):  # non-persistent buffers and lifted constants travel as data
            value = program.constants.get(spec.target)
            value = value if value is not None else program.state_dict[spec.target]
            constants[spec.arg.name] = value.detach().cpu().clone()
            inputs.append({"name": spec.arg.name, "kind": "constant", "target": spec.arg.name})
        else:
            raise UnsafeGraphError(f"exported input {spec.arg.name}: expected a tensor input, got kind {kind}")
    nodes, outputs = [], None
    for node in program.graph.nodes:
        if node.op == "call_function":
            kwargs = {k: encode(v) for k, v in node.kwargs.items()}
            nodes.append(
                {"name": node.name, "op": operator_name(node.target), "args": encode(node.args), "kwargs": kwargs}
            )
        elif node.op == "output":
            outputs = encode(node.args[0])
        elif node.op != "placeholder":
            raise UnsafeGraphError(f"exported node {node.name}: expected calls of operators, got {node.op}")
    shapes = {
        name: {
            "shape": list(t.shape),
            "dtype": str(t.dtype).removeprefix("torch."),
            "parameter": isinstance(t, nn.Parameter),
        }
        for name, t in state.items()
    }
    return {"format": FORMAT, "version": VERSION, "inputs": inputs, "nodes": nodes, "outputs": outputs,
            "constants": constants, "state": shapes}  # fmt: skip


def _field(data: Any, name: str) -> Tensor:
    """A field of a PyG graph or batch (``batch`` and ``ptr`` of a single graph made up), or a plain tensor input."""
    if isinstance(data, Tensor):
        if name != "input":
            raise ValueError(f"data: expected a PyG graph with field {name!r} (read by the graph form), got a tensor")
        return data
    value = data.get(name) if hasattr(data, "get") else None
    if value is None and name in ("batch", "ptr"):
        n = data.num_nodes
        index = data.pos if data.get("pos") is not None else data.x
        batch = torch.zeros(n, dtype=torch.long, device=index.device)
        return batch if name == "batch" else torch.tensor([0, n], device=index.device)
    if not isinstance(value, Tensor):
        raise ValueError(f"data: expected a field {name!r} (read by the model's graph form), got none")
    return value


class OpGraph(nn.Module):
    """The module a graph record (:func:`graph_to_record`) stands for: its parameters and buffers under the names
    of the model it was exported from (so that model's state dict loads into it), and a forward that runs the
    record's operators on the fields of a batch. Every operator is checked when the module is built; a record naming
    anything else is refused (:class:`UnsafeGraphError`) before anything runs.
    """

    def __init__(self, graph: Mapping[str, Any]) -> None:
        super().__init__()
        if not isinstance(graph, Mapping) or graph.get("format") != FORMAT or graph.get("version") != VERSION:
            got = graph.get("format") if isinstance(graph, Mapping) else type(graph).__name__
            raise ValueError(f"graph: expected a record of format {FORMAT!r} version {VERSION}, got {got!r}")
        self.graph = graph
        self.ops = [resolve_operator(node["op"]) for node in graph["nodes"]]
        known = {spec["name"] for spec in graph["inputs"]}
        for node in graph["nodes"]:
            _check_arguments([node["args"], list(node["kwargs"].values())], known, node["name"])
            known.add(node["name"])
        _check_arguments(graph["outputs"], known, "output")
        for name, meta in graph["state"].items():
            dtype = _torch_constant("dtype", meta["dtype"], torch.dtype)
            empty = torch.empty(meta["shape"], dtype=dtype)
            owner, _, leaf = name.rpartition(".")
            module = self._owner(owner)
            if meta["parameter"]:
                module.register_parameter(leaf, nn.Parameter(empty, requires_grad=empty.is_floating_point()))
            else:
                module.register_buffer(leaf, empty)
        self.constants = nn.Module()
        for name, value in graph["constants"].items():
            self.constants.register_buffer(name, value, persistent=False)

    def _owner(self, path: str) -> nn.Module:
        """The submodule at dotted ``path`` (made as empty containers), where a parameter of that prefix lives."""
        module: nn.Module = self
        for part in path.split(".") if path else []:
            if not hasattr(module, part):
                module.add_module(part, nn.Module())
            module = getattr(module, part)
        return module

    def forward(self, data: Any) -> Any:
        env: dict[str, Any] = {}
        for spec in self.graph["inputs"]:
            if spec["kind"] == "field":
                env[spec["name"]] = _field(data, spec["target"])
            elif spec["kind"] == "constant":
                env[spec["name"]] = getattr(self.constants, spec["target"])
            elif spec["kind"] == "parameter":
                env[spec["name"]] = self.get_parameter(spec["target"])
            else:
                env[spec["name"]] = self.get_buffer(spec["target"])
        device = next((v.device for v in env.values() if isinstance(v, Tensor)), torch.device("cpu"))
        for op, node in zip(self.ops, self.graph["nodes"]):
            args = decode(node["args"], env, device)
            kwargs = {k: decode(v, env, device) for k, v in node["kwargs"].items()}
            env[node["name"]] = op(*args, **kwargs)
        out = decode(self.graph["outputs"], env, device)
        return out[0] if isinstance(out, (tuple, list)) and len(out) == 1 else out
