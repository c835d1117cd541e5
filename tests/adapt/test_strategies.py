"""Adaptation strategies: what trains, what stays exact, and how errors read."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.loader import DataLoader

from geoadapt.adapt import (
    STRATEGIES,
    CanonicalizedImages,
    FrameAveraged,
    Freeze,
    GroupAveraged,
    LoRALinear,
    add_adapters,
    make_strategy,
    pca_frames,
)
from geoadapt.data import load
from geoadapt.dtypes import default_dtype
from geoadapt.groups import E3, O3, SO3, Cyclic, Dihedral, Permutation, group_from_name
from geoadapt.metrics import equivariance_error
from geoadapt.models import build
from geoadapt.testing import assert_equivariant
from geoadapt.train import Trainer
from tests.adapt.cases import GRAPH_CASES


@pytest.fixture(scope="module")
def loader():
    data = load("rdkit_chembl2321810", limit=48, progress=False)
    return DataLoader(data.graphs, batch_size=16, shuffle=True)


def test_linear_probe_leaves_backbone_bit_identical(loader):
    model = build("naive_gnn")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer = Trainer(model, strategy="linear_probe", max_epochs=2, lr=1e-2, progress=False)
    trainer.fit(loader)
    after = model.state_dict()
    for name in before:
        if name.startswith("head."):
            continue
        assert torch.equal(before[name], after[name]), name
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("head."))


def test_freeze_and_soft_freeze(loader):
    model = build("naive_gnn")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    strategy = make_strategy("freeze", model, patterns=("convs.0", "input"))
    Trainer(model, strategy=strategy, max_epochs=1, progress=False).fit(loader)
    assert torch.equal(before["convs.0.nn.0.weight"], model.state_dict()["convs.0.nn.0.weight"])
    assert not torch.equal(before["convs.1.nn.0.weight"], model.state_dict()["convs.1.nn.0.weight"])
    soft = make_strategy("soft_freeze", build("naive_gnn"), lr_scales={"convs.*": 0.1, "input": 0.0})
    groups = soft.param_groups(1e-3)
    assert sorted(g["lr"] for g in groups) == pytest.approx([1e-4, 1e-3])
    with pytest.raises(ValueError, match="freeze patterns"):
        make_strategy("freeze", build("naive_gnn"), patterns=("nothing_like_this",))


def test_head_policy_is_said_plainly():
    model = build("naive_gnn")
    head_before = model.head[0].weight.clone()
    strategy = make_strategy("finetune", model, head_policy="new")
    assert "NEW head" in strategy.notes[0] and not torch.equal(head_before, model.head[0].weight)
    assert "REUSE" in make_strategy("finetune", build("naive_gnn")).notes[0]
    with pytest.raises(ValueError, match="head policy"):
        make_strategy("finetune", build("naive_gnn"), head_policy="keep")


def test_lora_starts_identical_and_trains_only_adapters(molecules):
    model = build("naive_gnn")
    model.eval()
    reference = model(molecules)
    wrapped = add_adapters(model, rank=2, targets=("head.*", "input"))
    assert wrapped == ["input", "head.0", "head.2"]
    assert torch.allclose(model(molecules), reference)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all(n.endswith(("down", "up")) for n in trainable)


def test_irreps_adapters_stay_equivariant(molecules):
    with default_dtype(torch.float64):
        model = build("e3nn_gnn", output="0e+1o")
        add_adapters(model, rank=4)
        for p in model.parameters():
            if p.requires_grad:
                p.data.normal_()  # any adapter weights, not only the zero start
    assert_equivariant(model, molecules, O3() * Permutation(), model.spec)


@pytest.mark.parametrize("group", [Cyclic(4), Dihedral(4)], ids=repr)
def test_group_averaging_is_exact_for_finite_groups(group):
    cnn = build("cnn")
    cnn.eval()
    averaged = GroupAveraged(cnn, group, cnn.spec)
    images = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    assert equivariance_error(averaged.double(), images, group, cnn.spec, n_samples=None).max() < 1e-12
    assert equivariance_error(cnn.double(), images, group, cnn.spec, n_samples=None).max() > 1e-3


def test_frame_averaging_is_e3_equivariant_in_float64(molecules64):
    model = build("naive_gnn").double()
    averaged = FrameAveraged(model, model.spec)
    assert equivariance_error(averaged, molecules64, E3(), model.spec, n_samples=6).max() < 1e-10
    assert equivariance_error(model, molecules64, E3(), model.spec, n_samples=6).max() > 1e-2
    proper = FrameAveraged(model, model.spec, proper=True)
    assert equivariance_error(proper, molecules64, E3(proper=True), model.spec).max() < 1e-10


def test_pca_frames_are_rotations_of_the_eigenbasis(molecules64):
    frames, center = pca_frames(molecules64.pos, molecules64.batch, 5)
    assert frames.shape == (8, 5, 3, 3)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(frames @ frames.transpose(-1, -2), eye.expand_as(frames), atol=1e-12)
    assert (torch.det(pca_frames(molecules64.pos, molecules64.batch, 5, proper=True)[0]) > 0).all()


def test_canonicalized_models_are_equivariant(molecules64):
    model = build("naive_gnn").double()
    strategy = make_strategy("canonicalize", model, prior_weight=2.5)
    wrapped = strategy.model.double()
    assert equivariance_error(wrapped, molecules64, E3(proper=True), model.spec).max() < 1e-10
    pose = wrapped.canonicalizer(molecules64)
    wrapped(molecules64)
    eye = torch.eye(3, dtype=torch.float64)
    expected = 2.5 * ((pose - eye) ** 2).sum((-1, -2)).mean()  # the prior, by hand, on the last batch
    assert torch.allclose(strategy.extra_loss(), expected, rtol=1e-12) and expected > 0
    cnn = build("cnn")
    canonical = CanonicalizedImages(cnn, 4)
    canonical.eval()
    images = torch.randn(8, 1, 8, 8)
    assert equivariance_error(canonical, images, Cyclic(4), cnn.spec, n_samples=None).max() == 0.0


@pytest.mark.parametrize("proper", [True, False])
def test_canonical_pose_moves_with_the_input(proper, molecules64):
    """``R(g x) = g R(x)``: rotations for the SE(3) canonicalizer, rotations and reflections for E(3)."""
    group = SO3() if proper else O3()
    strategy = make_strategy("canonicalize", build("naive_gnn", hidden=16).double(), group=group)
    canonicalizer = strategy.model.double().canonicalizer
    pose = canonicalizer(molecules64)
    assert torch.allclose(pose @ pose.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand_as(pose))
    for det in (1, -1) if not proper else (1,):
        q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(det)))
        g = q if torch.det(q) * det > 0 else -q
        moved = molecules64.clone()
        moved.pos = molecules64.pos @ g.T
        assert torch.allclose(canonicalizer(moved), g @ pose, atol=1e-10)


def test_canonicalize_with_reflections_is_e3_invariant(molecules64):
    wrapped = make_strategy("canonicalize", build("naive_gnn", hidden=16).double(), group=O3()).model.double()
    reflected = molecules64.clone()
    reflected.pos = -molecules64.pos  # det -1, applied by hand
    out = wrapped(molecules64)
    assert (wrapped(reflected) - out).abs().max() < 1e-10 * out.abs().max()


def test_canonicalize_images_respects_dihedral_flips():
    torch.manual_seed(0)
    cnn = build("cnn", channels=4, num_blocks=1).double().eval()
    wrapped = make_strategy("canonicalize", cnn, group=Dihedral(4)).model.double().eval()
    images = torch.randn(6, 1, 8, 8, dtype=torch.float64)
    out = wrapped(images)
    for flip in (False, True):  # all eight elements of D4, applied by hand with rot90 / flip
        for k in range(4):
            moved = torch.rot90(torch.flip(images, dims=(-1,)) if flip else images, k, dims=(-2, -1))
            assert torch.allclose(wrapped(moved), out, atol=1e-12), (flip, k)
    flipped = torch.flip(images, dims=(-1,))
    assert (cnn(flipped) - cnn(images)).abs().max() > 1e-3  # the bare model is not flip invariant
    with pytest.raises(ValueError, match=r"Cyclic\(n\) or Dihedral\(n\) with n in \(1, 2, 4\).*got Cyclic\(8\)"):
        make_strategy("canonicalize", build("cnn"), group=Cyclic(8))


def test_canonicalize_trains_with_prior(loader):
    model = build("naive_gnn")
    trainer = Trainer(model, strategy="canonicalize", groups=[SO3()], max_epochs=2, progress=False)
    trainer.fit(loader)
    assert trainer.evaluate(loader)["equivariance_error"] < 1e-4


def test_augmentation_moves_vector_targets_with_the_input(molecules):
    data = molecules.clone()
    data.y = torch.randn(5, 3)
    strategy = make_strategy("augment", build("egnn", output="1o"), group=SO3())
    moved = strategy.batch_transform(data, torch.Generator().manual_seed(0))
    R = SO3().sample_like(data, torch.Generator().manual_seed(0))
    assert torch.allclose(moved.y, torch.einsum("bij,bj->bi", R.float(), data.y), atol=1e-5)


def test_unknown_strategy_and_missing_group():
    assert "canonicalize" in STRATEGIES
    with pytest.raises(ValueError, match=r"strategy: expected one of .*got 'distill'"):
        make_strategy("distill", build("gin"))
    with pytest.raises(ValueError, match="expected a group"):
        make_strategy("augment", build("gin"))


def test_freeze_without_patterns_is_refused():
    with pytest.raises(ValueError, match="strategy 'freeze' option 'patterns': expected at least one"):
        make_strategy("freeze", build("naive_gnn", hidden=16))
    with pytest.raises(ValueError, match="strategy 'soft_freeze' option 'lr_scales': expected a mapping"):
        make_strategy("soft_freeze", build("naive_gnn", hidden=16))
    with pytest.raises(ValueError, match=r"lr_scales': expected globs matching .*\['nothing'\]"):
        make_strategy("soft_freeze", build("naive_gnn", hidden=16), lr_scales={"nothing": 0.5})


def test_lora_with_a_new_head_trains_the_head(molecules):
    model = build("naive_gnn", hidden=16)
    strategy = make_strategy("lora", model, rank=2, head_policy="new")
    assert all(p.requires_grad for p in model.head.parameters())
    assert not any(isinstance(m, LoRALinear) for m in model.head.modules())
    assert isinstance(model.input, LoRALinear) and not model.input.base.weight.requires_grad
    head = [p.detach().clone() for p in model.head.parameters()]
    optimizer = torch.optim.SGD(strategy.param_groups(0.1))
    strategy.model(molecules).pow(2).mean().backward()
    optimizer.step()
    assert all(not torch.equal(before, p) for before, p in zip(head, model.head.parameters()))


def test_group_average_over_a_continuous_group_needs_n_samples(molecules):
    with pytest.raises(ValueError, match="option 'n_samples': expected an int for the continuous group SO3"):
        make_strategy("group_average", build("naive_gnn", hidden=16), group=SO3())
    averaged = make_strategy("group_average", build("naive_gnn", hidden=16), group=SO3(), n_samples=2).model
    assert isinstance(averaged, GroupAveraged) and averaged(molecules).shape == (5, 1)


@pytest.mark.parametrize("name", sorted(GRAPH_CASES))
def test_parameters_frozen_by_the_model_stay_frozen(name, molecules):
    """A model's own constants (frozen before adaptation) never train, whatever the strategy."""
    options, group = GRAPH_CASES[name]
    model = build("naive_gnn", hidden=16)
    constants = [model.input.bias, model.head[2].bias, model.convs[1].nn[0].weight]
    for p in constants:
        p.requires_grad_(False)
    values = [p.detach().clone() for p in constants]
    strategy = make_strategy(name, model, group=group, **options)
    assert all(not p.requires_grad for p in constants)
    in_optimizer = {id(p) for g in strategy.param_groups(1e-2) for p in g["params"]}
    assert in_optimizer and not in_optimizer & {id(p) for p in constants}
    optimizer = torch.optim.AdamW(strategy.param_groups(1e-2), weight_decay=0.1)
    for _ in range(2):
        optimizer.zero_grad()
        loss = strategy.model(molecules).pow(2).mean()
        if strategy.extra_loss is not None:
            loss = loss + strategy.extra_loss()
        loss.backward()
        optimizer.step()
    assert all(torch.equal(v, p) for v, p in zip(values, constants))
    assert len(strategy.kept_frozen) == 3 and any("kept frozen: 3" in note for note in strategy.notes)


def test_options_are_typed_and_named_in_errors():
    with pytest.raises(ValueError, match=r"strategy 'finetune': unknown option 'rank' \(its options: \['head', "):
        make_strategy("finetune", build("gin"), rank=2)
    with pytest.raises(ValueError, match="strategy 'lora' option 'rank': expected int, got str 'eight'"):
        make_strategy("lora", build("gin"), rank="eight")
    with pytest.raises(ValueError, match="option 'n_samples': expected int or None, got float 2.5"):
        make_strategy("group_average", build("gin"), group=Cyclic(4), n_samples=2.5)
    strategy = make_strategy("freeze", build("naive_gnn", hidden=16), patterns=["convs.0.*"])
    assert strategy.options.patterns == ("convs.0.*",) and strategy.options.to_dict()["patterns"] == ["convs.0.*"]


def test_trainer_takes_options_and_unapplied_strategies(loader):
    model = build("naive_gnn", hidden=16)
    trainer = Trainer(model, strategy="lora", strategy_options={"rank": 3}, max_epochs=1, progress=False)
    assert model.input.down.shape == (3, model.input.base.in_features)
    with pytest.raises(ValueError, match="strategy 'lora' option 'rank': expected int"):
        Trainer(build("naive_gnn", hidden=16), strategy="lora", strategy_options={"rank": "3"})
    model = build("naive_gnn", hidden=16)
    before = model.input.weight.detach().clone()
    trainer = Trainer(model, strategy=Freeze(patterns=["input"]), groups=[], max_epochs=1, progress=False)
    trainer.fit(loader)
    assert torch.equal(before, model.input.weight) and trainer.strategy.model is model


def test_strategy_steps_are_recorded_on_the_model():
    model = build("naive_gnn", hidden=16)
    wrapped = make_strategy("frame_average", make_strategy("lora", model, rank=2).model, proper=True).model
    assert [s["strategy"] for s in wrapped.adaptations] == ["lora", "frame_average"]
    assert wrapped.adaptations[1]["options"]["proper"] is True and wrapped.adaptations[1]["inner"] == "model"
    assert (
        make_strategy("augment", build("gin"), group=group_from_name("perm*so3")).model.adaptations[0]["group"]
        == "permutation*so3"
    )
