"""Pinned: what a strategy does to a pretrained model's outputs before the first optimizer step.

Strategies that change only which parameters train, or add adapters that start at zero, leave every output
bit for bit (in float64). Symmetrizing wrappers (averages, canonicalization) change the outputs of a model
that lacks their symmetry, by design, and keep those of a model that already has it, to round-off. A new
head (``head_policy="new"``) redraws every head parameter and nothing else; ``"reuse"`` touches nothing.
"""

from __future__ import annotations

import copy
import functools

import pytest
import torch
from torch import nn

from geoadapt import Spec
from geoadapt.adapt import STRATEGIES, make_strategy
from geoadapt.dtypes import default_dtype
from geoadapt.groups import SO3, Dihedral
from geoadapt.models import build
from tests.conftest import PooledImageModel

# The model itself (or the model with zero-start adapters): outputs unchanged for any model.
PRESERVING = {"finetune", "linear_probe", "freeze", "soft_freeze", "lora", "augment"}
# A wrapper that averages over, or canonicalizes under, a symmetry: outputs unchanged only when the model
# already has that symmetry.
SYMMETRIZING = {"group_average", "frame_average", "parity_average", "canonicalize"}

# Options that fit every backbone below (globs over the head, which every one of them has).
OPTIONS = {
    "finetune": ({}, None),
    "linear_probe": ({}, None),
    "freeze": ({"patterns": ("head.*",)}, None),
    "soft_freeze": ({"lr_scales": {"head.*": 0.1}}, None),
    "lora": ({"rank": 2}, None),
    "augment": ({}, SO3()),
    "group_average": ({"n_samples": 3}, SO3()),
    "frame_average": ({}, None),
    "parity_average": ({}, None),
    "canonicalize": ({}, SO3()),
}
SMALL = {
    "naive_gnn": {"hidden": 16},
    "gin": {"hidden": 16},
    "egnn": {"hidden": 16},
    "e3nn_gnn": {"lmax": 1, "num_layers": 1, "hidden": "8x0e+4x1o"},
}


@functools.cache
def _built(arch: str) -> nn.Module:
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        return build(arch, **SMALL[arch]).eval()


def pretrained_copy(arch: str) -> nn.Module:
    """A float64 backbone in eval mode, the same one each call (a copy: e3nn layers take a second to build)."""
    return copy.deepcopy(_built(arch))


def _adapt(name: str, model: nn.Module) -> nn.Module:
    options, group = OPTIONS[name]
    return make_strategy(name, model, group=group, **options).model


def _relative_change(after: torch.Tensor, before: torch.Tensor) -> float:
    return float((after - before).abs().max() / before.abs().max())


def test_every_strategy_is_classified():
    assert PRESERVING | SYMMETRIZING == set(STRATEGIES) and not PRESERVING & SYMMETRIZING
    assert set(OPTIONS) == set(STRATEGIES)


@pytest.mark.parametrize("arch", ["naive_gnn", "gin", "e3nn_gnn"])  # nn.Linear layers; e3nn o3.Linear layers
@pytest.mark.parametrize("name", sorted(PRESERVING))
def test_structure_strategies_keep_every_output_and_parameter_bit_for_bit(name, arch, molecules64):
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        model = pretrained_copy(arch)
        before = model(molecules64)
        pretrained = {id(p): p.detach().clone() for p in model.parameters()}
        adapted = _adapt(name, model).eval()
        after = adapted(molecules64)
    assert torch.equal(after, before)
    # head_policy "reuse" (the default) and the structure leave every pretrained parameter as it was.
    kept = [p for p in adapted.parameters() if id(p) in pretrained]
    assert len(kept) == len(pretrained) and all(torch.equal(p, pretrained[id(p)]) for p in kept)


@pytest.mark.parametrize("arch", ["naive_gnn", "gin", "e3nn_gnn"])
def test_lora_adapters_start_at_zero_yet_are_in_the_forward(arch, molecules64):
    """Zero outputs at the start, not adapters left out of the forward: moving them moves the outputs."""
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        model = pretrained_copy(arch)
        before = model(molecules64)
        adapted = _adapt("lora", model).eval()
        assert torch.equal(adapted(molecules64), before)
        adapters = [p for p in adapted.parameters() if p.requires_grad]
        with torch.no_grad():
            for p in adapters:
                p.add_(0.1 * torch.randn_like(p))
        assert adapters and _relative_change(adapted(molecules64), before) > 1e-4


@pytest.mark.parametrize("arch", ["egnn", "e3nn_gnn"])  # E(3)-invariant energies by construction
@pytest.mark.parametrize("name", sorted(SYMMETRIZING))
def test_symmetrizing_wrappers_keep_the_outputs_of_a_model_that_has_the_symmetry(name, arch, molecules64):
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        model = pretrained_copy(arch)
        before = model(molecules64)
        adapted = _adapt(name, model).eval()
        after = adapted(molecules64)
    assert after.shape == before.shape
    assert _relative_change(after, before) < 1e-10


@pytest.mark.parametrize("name", sorted(SYMMETRIZING))
def test_symmetrizing_wrappers_change_the_outputs_of_a_model_without_the_symmetry(name, molecules64):
    """Not output-preserving by design: the naive GNN reads raw coordinates, its wrapper does not."""
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        model = pretrained_copy("naive_gnn")
        before = model(molecules64)
        after = _adapt(name, model).eval()(molecules64)
    assert _relative_change(after, before) > 1e-3


@pytest.mark.parametrize(
    "name, options",
    [("lora", {"rank": 2}), ("group_average", {}), ("canonicalize", {})],
)
def test_image_strategies_keep_the_outputs_of_a_d4_invariant_model(name, options):
    torch.manual_seed(0)
    images = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    with default_dtype(torch.float64):
        model = PooledImageModel(classes=3).eval()  # 1x1 convolution + global mean: exactly D4-invariant
        before = model(images)
        spec = Spec(fields={}, output="3x0e", positions=())
        adapted = make_strategy(name, model, spec, Dihedral(4), **options).model.eval()
        after = adapted(images)
    assert _relative_change(after, before) < 1e-12


HEADED = ["naive_gnn", "gin", "egnn", "e3nn_gnn", "pointnet", "cnn"]


@pytest.mark.parametrize("arch", HEADED)
def test_a_new_head_redraws_every_head_parameter_and_nothing_else(arch):
    """``head_policy="new"`` is output-changing by design; the backbone stays bit for bit."""
    torch.manual_seed(0)
    model = build(arch, **SMALL.get(arch, {}))
    with torch.no_grad():  # "pretrained": no parameter at its initial value (zero biases included)
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    strategy = make_strategy("finetune", model, head_policy="new")
    head = [n for n in before if n.startswith("head.")]
    assert head and "NEW head" in strategy.notes[0]
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]) is (name not in head), name


class ScaledHead(nn.Module):
    """A head with a bare parameter: no layer knows how to redraw it."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 1)
        self.scale = nn.Parameter(torch.tensor(2.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.lin(x)


def test_a_new_head_that_cannot_be_redrawn_is_refused():
    model = nn.Sequential()
    model.add_module("head", ScaledHead())
    model.spec = Spec(fields={}, output="1x0e", positions=())
    with pytest.raises(ValueError, match=r"head policy 'new': expected every parameter .*got \['scale'\]"):
        make_strategy("finetune", model, head_policy="new")
