"""Pinned: exactly which parameters each strategy trains, by name, against the set its policy names.

The expected sets are written out here from each policy (prefixes, explicit layer lists), not read from the
strategy; parameters the model had frozen before the strategy stay out of them, whatever the policy. The
optimizer groups hold exactly the trainable parameters, at the learning rates the policy gives them, and a
Trainer step moves nothing else.
"""

from __future__ import annotations

import copy

import pytest
import torch
from e3nn import o3
from torch import nn
from torch_geometric.data import Batch

from geoadapt.adapt import make_strategy
from geoadapt.dtypes import default_dtype
from geoadapt.groups import SO3
from geoadapt.models import build
from geoadapt.train import Trainer

# Frozen by the "pretrained" model itself before any strategy (constants, or a user's choice).
PREFROZEN = ("input.bias", "head.2.bias", "convs.1.nn.0.weight", "convs.0.lin.weight")


def naive() -> nn.Module:
    torch.manual_seed(0)
    return build("naive_gnn", hidden=16)


NAMES = [n for n, _ in naive().named_parameters()]
# nn.Linear layers of the naive GNN by name (GINEConv's own edge projection is a PyG Linear, not adapted).
LINEARS = ["input", *(f"convs.{i}.nn.{j}" for i in range(3) for j in (0, 2)), "head.0", "head.2"]


def _under(name: str, *prefixes: str) -> bool:
    return any(name.startswith(prefix + ".") for prefix in prefixes)


# name -> (strategy, options, group, trainable parameter names of the adapted model before removing PREFROZEN)
CASES = {
    "finetune": ("finetune", {}, None, set(NAMES)),
    "augment": ("augment", {}, SO3(), set(NAMES)),
    "linear_probe": ("linear_probe", {}, None, {n for n in NAMES if _under(n, "head")}),
    "freeze modules": (
        "freeze",
        {"patterns": ("convs.0.*", "input")},  # a glob, and a module name standing for all it holds
        None,
        {n for n in NAMES if not _under(n, "convs.0", "input")},
    ),
    "freeze across dots": (  # fnmatch's "*" crosses dots: every layer's edge-projection weight
        "freeze",
        {"patterns": ("convs.*.lin.weight",)},
        None,
        set(NAMES) - {f"convs.{i}.lin.weight" for i in range(3)},
    ),
    "soft_freeze": (  # the first matching glob wins: convs.0 at 0 although "convs.*" also matches it
        "soft_freeze",
        {"lr_scales": {"convs.0.*": 0.0, "convs.*": 0.5, "input": 0.0}},
        None,
        {n for n in NAMES if not _under(n, "convs.0", "input")},
    ),
    "lora": ("lora", {"rank": 2}, None, {f"{m}.{a}" for m in LINEARS for a in ("down", "up")}),
    "lora targets": (
        "lora",
        {"rank": 2, "targets": ("convs.*",)},
        None,
        {f"{m}.{a}" for m in LINEARS if m.startswith("convs.") for a in ("down", "up")},
    ),
    "lora new head": (  # adapters outside the head; the fresh head trains in full
        "lora",
        {"rank": 2, "head_policy": "new"},
        None,
        {f"{m}.{a}" for m in LINEARS if not m.startswith("head.") for a in ("down", "up")}
        | {n for n in NAMES if _under(n, "head")},
    ),
    "group_average": ("group_average", {"n_samples": 2}, SO3(), {f"model.{n}" for n in NAMES}),
    "frame_average": ("frame_average", {}, None, {f"model.{n}" for n in NAMES}),
    "parity_average": ("parity_average", {}, None, {f"model.{n}" for n in NAMES}),
    "canonicalize": ("canonicalize", {}, SO3(), {f"model.{n}" for n in NAMES} | {"canonicalizer"}),
}


def _expected(case: str, adapted: nn.Module) -> set[str]:
    names = set(CASES[case][3])
    if "canonicalizer" in names:  # the canonicalization network trains in full, with the model
        names = (names - {"canonicalizer"}) | {n for n, _ in adapted.named_parameters() if _under(n, "canonicalizer")}
    return names


def _trainable(model: nn.Module) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("prefrozen", [False, True], ids=["all trainable", "some frozen before"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_trainable_parameters_are_exactly_those_the_policy_names(case, prefrozen):
    name, options, group, _ = CASES[case]
    model = naive()
    frozen_before = {id(p) for n, p in model.named_parameters() if prefrozen and n in PREFROZEN}
    for p in model.parameters():
        if id(p) in frozen_before:
            p.requires_grad_(False)
    strategy = make_strategy(name, model, group=group, **options)
    adapted = strategy.model
    expected = _expected(case, adapted) - {n for n, p in adapted.named_parameters() if id(p) in frozen_before}
    assert _trainable(adapted) == expected
    assert len(frozen_before) == (len(PREFROZEN) if prefrozen else 0)
    assert all(not p.requires_grad for p in adapted.parameters() if id(p) in frozen_before)
    in_groups = [p for g in strategy.param_groups(1.0) for p in g["params"]]
    assert len(in_groups) == len({id(p) for p in in_groups})  # each parameter in one group only
    assert {id(p) for p in in_groups} == {id(p) for n, p in adapted.named_parameters() if n in expected}


def test_soft_freeze_learning_rates_follow_the_first_matching_glob():
    strategy = make_strategy("soft_freeze", naive(), lr_scales={"convs.0.*": 0.0, "convs.*": 0.5, "head.0": 0.25})
    lr_of = {id(p): g["lr"] for g in strategy.param_groups(0.1) for p in g["params"]}
    for name, p in strategy.model.named_parameters():
        if _under(name, "convs.0"):
            assert id(p) not in lr_of and not p.requires_grad, name
        else:
            scale = 0.5 if _under(name, "convs") else 0.25 if _under(name, "head.0") else 1.0
            assert lr_of[id(p)] == pytest.approx(0.1 * scale), name


def test_lora_on_e3nn_layers_trains_exactly_the_irreps_adapters():
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        model = build("e3nn_gnn", lmax=1, num_layers=1, hidden="8x0e+4x1o")
        layers = [n for n, m in model.named_modules() if isinstance(m, o3.Linear) and m.weight_numel > 0]
        make_strategy("lora", model, rank=2)
    assert {"embed", "layers.0.up", "layers.0.down", "head"} <= set(layers)
    assert _trainable(model) == {f"{m}.{a}.weight" for m in layers for a in ("down", "up")}


def _labelled(molecules: Batch) -> list[Batch]:
    graphs = molecules.to_data_list()
    for k, g in enumerate(graphs):
        g.y = torch.tensor([[float(k) - 2.0]])
    return [Batch.from_data_list(graphs)]


@pytest.mark.parametrize("case", ["finetune", "linear_probe", "freeze modules", "soft_freeze", "lora new head"])
def test_a_trainer_step_moves_the_trainable_parameters_and_nothing_else(case, molecules):
    name, options, group, _ = CASES[case]
    model = naive()
    prefrozen = {id(p) for n, p in model.named_parameters() if n in PREFROZEN}
    for p in model.parameters():
        p.requires_grad_(id(p) not in prefrozen)
    trainer = Trainer(
        model, strategy=name, strategy_options=options, groups=[], max_epochs=1, lr=1e-2, grad_clip=None, progress=False
    )
    before = {n: p.detach().clone() for n, p in trainer.model.named_parameters()}
    expected = _trainable(trainer.model)
    assert len(prefrozen) == len(PREFROZEN)
    assert not expected & {n for n, p in trainer.model.named_parameters() if id(p) in prefrozen}
    trainer.fit(_labelled(molecules))
    moved = {n for n, p in trainer.model.named_parameters() if not torch.equal(p, before[n])}
    if name == "lora":  # the adapters' down maps get no gradient while their up maps are zero
        expected = {n for n in expected if not n.endswith(".down")}
    assert moved == expected


def test_a_trainer_without_a_strategy_trains_the_model_as_it_is(molecules):
    model = naive()
    for n, p in model.named_parameters():
        p.requires_grad_(n not in PREFROZEN)
    pretrained = copy.deepcopy(model.state_dict())
    trainer = Trainer(model, groups=[], max_epochs=1, lr=1e-2, grad_clip=None, progress=False)
    assert trainer.model is model and _trainable(model) == set(NAMES) - set(PREFROZEN)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in pretrained.items())  # no head policy applied
    trainer.fit(_labelled(molecules))
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, pretrained[n])}
    assert moved == set(NAMES) - set(PREFROZEN)
