"""Adapted models save and load exactly: every strategy's adapters and wrappers come back with their weights."""

from __future__ import annotations

import pytest
import torch

from geoadapt import checkpoints
from geoadapt.adapt import STRATEGIES, make_strategy
from geoadapt.checkpoints import load, save
from geoadapt.dtypes import default_dtype
from geoadapt.models import build
from geoadapt.structure import to_dtype
from tests.adapt.cases import GRAPH_CASES, IMAGE_CASES


def _perturb_trainable(model: torch.nn.Module) -> None:
    """Move every trainable weight (LoRA's zero-initialized ``up`` too) so the saved state is not the init."""
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.1 * torch.randn_like(p))


def _outputs(model: torch.nn.Module, inputs) -> torch.Tensor:
    torch.manual_seed(7)  # group_average over SO3 samples its elements: same draws for both models
    with torch.no_grad():
        return model(inputs)


def _check_round_trip(adapted: torch.nn.Module, inputs, path, name: str) -> torch.nn.Module:
    adapted.eval()
    expected = _outputs(adapted, inputs)
    save(adapted, path, dataset="unit")
    torch.manual_seed(123)  # a different init for the rebuilt model: only the state dict can make it equal
    loaded = load(path)
    loaded.eval()
    assert torch.equal(_outputs(loaded, inputs), expected)
    assert [type(m) for m in loaded.modules()] == [type(m) for m in adapted.modules()]  # lazy layers: after a call
    trainable = [n for n, p in adapted.named_parameters() if p.requires_grad]
    assert [n for n, p in loaded.named_parameters() if p.requires_grad] == trainable
    assert loaded.checkpoint["strategy"] == name and loaded.checkpoint["dataset"] == "unit"
    return loaded


def test_every_strategy_has_a_case():
    assert set(GRAPH_CASES) == set(STRATEGIES)


@pytest.mark.parametrize("name", sorted(GRAPH_CASES))
def test_adapted_graph_model_round_trips(name, molecules, tmp_path):
    options, group = GRAPH_CASES[name]
    torch.manual_seed(0)
    with default_dtype(torch.float64):
        strategy = make_strategy(name, build("naive_gnn", hidden=16), group=group, **options)
    _perturb_trainable(strategy.model)
    loaded = _check_round_trip(strategy.model, to_dtype(molecules, torch.float64), tmp_path / "m.pt", name)
    assert loaded.checkpoint["strategy_options"] == strategy.options.to_dict()
    assert next(loaded.parameters()).dtype == torch.float64


@pytest.mark.parametrize("name", sorted(IMAGE_CASES))
def test_adapted_image_model_round_trips(name, tmp_path):
    options, group = IMAGE_CASES[name]
    torch.manual_seed(0)
    images = torch.randn(6, 1, 8, 8)
    strategy = make_strategy(name, build("cnn", channels=4, num_blocks=1), group=group, **options)
    strategy.model(images)  # materialize lazy layers (the canonicalizer's scorer) as the Trainer does
    _perturb_trainable(strategy.model)
    _check_round_trip(strategy.model, images, tmp_path / "m.pt", name)


def _random_orthogonal(det: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    return q if torch.det(q) * det > 0 else -q


@pytest.mark.parametrize("name,group", [("frame_average", None), ("canonicalize", "o3")])
def test_loaded_wrapper_keeps_its_symmetry(name, group, molecules64, tmp_path):
    from geoadapt.groups import group_from_name

    torch.manual_seed(0)
    with default_dtype(torch.float64):
        plain = build("naive_gnn", hidden=16)
        strategy = make_strategy(name, plain, group=group_from_name(group) if group else None)
    _perturb_trainable(strategy.model)
    save(strategy.model, tmp_path / "m.pt")
    loaded = load(tmp_path / "m.pt").eval()
    out = loaded(molecules64)
    for det in (1, -1):  # a rotation and a rotation-reflection, with a shift, applied by hand
        R, t = _random_orthogonal(det), torch.randn(3, dtype=torch.float64)
        moved = molecules64.clone()
        moved.pos = molecules64.pos @ R.T + t
        assert (loaded(moved) - out).abs().max() < 1e-10 * out.abs().max()
        assert (plain(moved) - plain(molecules64)).abs().max() > 1e-3  # the unwrapped model is not invariant


def test_format_version_1_checkpoints_still_load(molecules, tmp_path):
    model = build("naive_gnn", hidden=16).eval()
    payload = {  # the version-1 layout, written out field by field
        "format": "geoadapt-checkpoint",
        "format_version": 1,
        "library_version": "0.1.0",
        "arch": "naive_gnn",
        "config": dict(model.config),
        "state_dict": model.state_dict(),
        "spec": model.spec.to_dict(),
        "normalization": {"mean": [1.0], "std": [2.0]},
        "dataset": "old",
        "metrics": {"rmse": 0.5},
        "extra": {},
    }
    torch.save(payload, tmp_path / "old.pt")
    loaded = load(tmp_path / "old.pt").eval()
    # The old "normalization" is the target scaler: the loaded model answers in target units.
    assert torch.equal(loaded.network(molecules), model(molecules))
    assert torch.equal(loaded(molecules), model(molecules) * torch.tensor([2.0]) + torch.tensor([1.0]))
    assert loaded.scaler.state() == {"mean": [1.0], "std": [2.0]} and loaded.checkpoint["strategy"] is None
    assert all(p.requires_grad for p in loaded.parameters())


def test_newer_format_is_refused(tmp_path):
    path = save(build("gin"), tmp_path / "gin.pt")
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, path)
    with pytest.raises(ValueError, match=f"expected format version <= {checkpoints.FORMAT_VERSION}, got 99"):
        load(path)
