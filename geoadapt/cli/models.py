"""The model of a command: loaded, built by name (sizes read from the data), adapted by a strategy, and checked
against the data with one forward pass before any training."""

from __future__ import annotations

from typing import Any

from geoadapt.cli.keys import DEFAULTS
from geoadapt.errors import ConfigError

# top-level keys of ``adapt`` that are shortcuts for an option of the strategy
STRATEGY_SHORTCUTS = {"head_policy": "head_policy", "freeze": "patterns", "rank": "rank", "n_samples": "n_samples"}
INPUT_SIZE_KEYS = {"x": "in_dim", "edge_attr": "edge_dim"}  # data field -> the model_config key of its width


def model_from_config(config: dict[str, Any]):
    """The model of ``checkpoint=`` (loaded) or ``model=`` (a registered pretrained model, built)."""
    import torch

    from geoadapt.checkpoints import load
    from geoadapt.models import available, build

    if config.get("checkpoint") is not None:
        return load(config["checkpoint"], trust_code=bool(config.get("trust_code", False)))
    if config["model"] not in available():
        raise ConfigError(f"model: expected a registered model name among {available()}, got {config['model']!r}")
    # An architecture without pretrained weights starts from a random init: the run's seed makes it the same
    # in every process (and so a resumed run the same as an uninterrupted one).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.get("seed", 0))
        model = build(config["model"])
    model.checkpoint = {"dataset": None, "extra": {}}
    return model


def model_label(config: dict[str, Any], model) -> str:
    """How errors name the model: its checkpoint (with architecture and source data) or its registered name."""
    if config.get("checkpoint") is not None:
        return f"checkpoint {config['checkpoint']} ({model.arch}, trained on {(model.checkpoint or {}).get('dataset')})"
    return f"model {config['model']}"


def _describe(inputs: Any) -> str:
    from geoadapt.structure import is_graph

    if is_graph(inputs):
        return "graphs with fields " + ", ".join(k for k in ("x", "pos", "edge_attr") if inputs.get(k) is not None)
    return f"tensors of shape {tuple(getattr(inputs, 'shape', ()))}"


def check_model_reads(model, loader, what: str, hint: str, task=None) -> None:
    """One forward on one batch (eval mode, no gradients): a model that cannot read the data fails here, in one
    line; so does (with ``task``) an output whose rows or columns are not those of the model's Spec."""
    import torch
    from e3nn import o3

    from geoadapt.devices import to_device
    from geoadapt.models import network_of
    from geoadapt.structure import is_graph
    from geoadapt.tasks import split_batch

    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    split = task.split if task is not None else split_batch
    inputs = to_device(split(next(iter(loader)))[0], device)
    if is_graph(inputs):
        for field, irreps in model.spec.fields.items():
            value = inputs.get(field)
            if isinstance(value, torch.Tensor) and value.dim() == 2 and value.shape[-1] != o3.Irreps(irreps).dim:
                raise ConfigError(
                    f"{what}: the data's field {field!r} has {value.shape[-1]} columns, the model expects "
                    f"{o3.Irreps(irreps).dim} ({irreps}){hint}"
                )
    was_training = model.training
    model.eval()
    network = network_of(model)
    try:
        with torch.no_grad():
            out = network(inputs)
    except (RuntimeError, TypeError, AttributeError, IndexError, KeyError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"{what}: the model cannot read {_describe(inputs)} ({first}){hint}") from err
    finally:
        model.train(was_training)
    if task is not None:
        task.check_output(out, inputs, network)


def _sizes_from_data(card: dict[str, Any], loader) -> dict[str, Any]:
    """Input widths, and the output count of multi-class or multi-target data, read from the first batch."""
    from geoadapt.structure import is_graph
    from geoadapt.tasks import make_task

    task = make_task(card["task"])
    inputs, y = task.split(next(iter(loader)))
    sizes: dict[str, Any] = {}
    if is_graph(inputs):
        if inputs.get("x") is not None:
            sizes["in_dim"] = int(inputs.x.shape[-1])
        sizes["edge_dim"] = int(inputs.edge_attr.shape[-1]) if inputs.get("edge_attr") is not None else 0
    elif getattr(inputs, "dim", lambda: 0)() == 4:
        sizes["in_channels"] = int(inputs.shape[1])
    outputs = task.output_columns(inputs, y, card.get("num_classes"))
    if outputs:
        sizes.update({"out_dim": outputs, "num_classes": outputs, "output": f"{outputs}x0e"})
    return sizes


def pretraining_model(config: dict[str, Any], card: dict[str, Any], loader):
    """The ``model=`` architecture built with ``model_config`` plus the sizes it takes from the data (said in one
    printed line), from the run's seed, and checked to read the data."""
    import torch

    from geoadapt.models import build

    defaults = build(config["model"]).config
    inferred = {
        k: v
        for k, v in _sizes_from_data(card, loader).items()
        if k in defaults and k not in config["model_config"] and defaults[k] != v
    }
    if inferred:
        shown = ", ".join(f"{k}={v!r}" for k, v in inferred.items())
        print(f"model_config from the data: {shown} (set model_config to choose)")
    torch.manual_seed(config["seed"])
    model = build(config["model"], **{**inferred, **config["model_config"]})
    keys = [f"{k} for {field}" for field, k in INPUT_SIZE_KEYS.items() if k in model.config]
    hint = f"; set model_config ({', '.join(keys)})" if keys else f"; model_config keys: {sorted(model.config)}"
    check_model_reads(model, loader, f"model {config['model']} on data {config['data']}", hint)
    return model


def strategy_from_config(config: dict[str, Any], model, group):
    """Apply ``config["strategy"]`` with ``strategy_options`` plus the top-level shortcuts that are set."""
    from geoadapt.adapt import make_strategy

    options = config.get("strategy_options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"strategy_options: expected a mapping of option names to values, got {options!r}")
    options = dict(options)
    for key, option in STRATEGY_SHORTCUTS.items():
        value = config.get(key)
        if value is None or (option in options and value == DEFAULTS["adapt"][key]):
            continue  # unset, or left at its default beside an explicit strategy option
        if option in options and options[option] != value:
            raise ConfigError(f"{key}: expected it once, got {value!r} and strategy_options.{option}")
        options[option] = value
    try:
        return make_strategy(config["strategy"], model, model.spec, group, **options)
    except ValueError as err:
        raise ConfigError(str(err)) from None
