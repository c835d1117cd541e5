"""Adaptation strategies: what trains, what stays exact, and how errors read."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.loader import DataLoader

from geoadapt.adapt import (
    STRATEGIES,
    CanonicalizedImages,
    FrameAveraged,
    GroupAveraged,
    add_adapters,
    make_strategy,
    pca_frames,
)
from geoadapt.data import load
from geoadapt.dtypes import default_dtype
from geoadapt.groups import E3, O3, SO3, Cyclic, Dihedral, Permutation
from geoadapt.metrics import equivariance_error
from geoadapt.models import build
from geoadapt.testing import assert_equivariant
from geoadapt.train import Trainer


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
    assert equivariance_error(averaged, molecules64, E3(), model.spec, n_samples=6).max() < 1e-5
    assert equivariance_error(model, molecules64, E3(), model.spec, n_samples=6).max() > 1e-2
    proper = FrameAveraged(model, model.spec, proper=True)
    assert equivariance_error(proper, molecules64, E3(proper=True), model.spec).max() < 1e-5


def test_pca_frames_are_rotations_of_the_eigenbasis(molecules64):
    frames, center = pca_frames(molecules64.pos, molecules64.batch, 5)
    assert frames.shape == (8, 5, 3, 3)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(frames @ frames.transpose(-1, -2), eye.expand_as(frames), atol=1e-12)
    assert (torch.det(pca_frames(molecules64.pos, molecules64.batch, 5, proper=True)[0]) > 0).all()


def test_canonicalized_models_are_equivariant(molecules64):
    model = build("naive_gnn").double()
    strategy = make_strategy("canonicalize", model)
    wrapped = strategy.model.double()
    assert equivariance_error(wrapped, molecules64, E3(proper=True), model.spec).max() < 1e-5
    assert strategy.extra_loss is not None and float(strategy.extra_loss()) >= 0
    cnn = build("cnn")
    canonical = CanonicalizedImages(cnn, 4)
    canonical.eval()
    images = torch.randn(8, 1, 8, 8)
    assert equivariance_error(canonical, images, Cyclic(4), cnn.spec, n_samples=None).max() == 0.0


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
