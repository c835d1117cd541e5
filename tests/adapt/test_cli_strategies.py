"""Strategies and their options through the command line, and the adapted model in the run folder."""

from __future__ import annotations

import json

import pytest
import torch

from geoadapt.adapt import FrameAveraged, GroupAveraged
from geoadapt.checkpoints import load, save
from geoadapt.cli import main
from geoadapt.models import Predictor, build


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    return save(build("naive_gnn", hidden=16), tmp_path_factory.mktemp("pre") / "model.pt")


def adapt(checkpoint, out, *options: str) -> int:
    return main(
        [
            "adapt",
            f"checkpoint={checkpoint}",
            "data=rdkit_chembl2321810",
            f"out={out}",
            "limit=40",
            "epochs=1",
            "progress=false",
            *options,
        ]
    )


def test_freeze_patterns_from_the_command_line(checkpoint, tmp_path, capsys):
    assert adapt(checkpoint, tmp_path / "run", "strategy=freeze", "freeze=[convs.0.*]") == 0
    assert "freeze: 6 tensors matching ['convs.0.*'] frozen" in capsys.readouterr().out
    adapted = load(tmp_path / "run" / "model.pt")
    assert isinstance(adapted, Predictor)  # a regressor answering in target units, around the adapted network
    before, after = load(checkpoint).state_dict(), adapted.network.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("convs.0."))
    assert not torch.equal(before["convs.1.nn.0.weight"], after["convs.1.nn.0.weight"])
    saved = torch.load(tmp_path / "run" / "model.pt", weights_only=True)
    assert saved["strategy"] == "freeze" and saved["strategy_options"]["patterns"] == ["convs.0.*"]


def test_group_average_over_so3_with_n_samples(checkpoint, tmp_path):
    assert adapt(checkpoint, tmp_path / "run", "strategy=group_average", "n_samples=2", "groups=[so3]") == 0
    loaded = load(tmp_path / "run" / "model.pt").network
    assert isinstance(loaded, GroupAveraged) and loaded.n_samples == 2 and repr(loaded.group) == "SO3"


def test_frame_averaged_model_is_saved_and_evaluated_wrapped(checkpoint, tmp_path, capsys):
    assert adapt(checkpoint, tmp_path / "run", "strategy=frame_average", "strategy_options={proper: true}") == 0
    assert isinstance(load(tmp_path / "run" / "model.pt").network, FrameAveraged)
    capsys.readouterr()
    argv = ["evaluate", f"checkpoint={tmp_path / 'run' / 'model.pt'}", "data=rdkit_chembl2321810", "limit=40"]
    assert main([*argv, "groups=so3", "--json"]) == 0
    wrapped = json.loads(capsys.readouterr().out)["groups"][0]["max_error"]
    assert main([*argv[:1], f"checkpoint={checkpoint}", *argv[2:], "groups=so3", "--json"]) == 0
    plain = json.loads(capsys.readouterr().out)["groups"][0]["max_error"]
    assert wrapped < 1e-4 < plain  # float32: the frame average is exact up to rounding, the plain model is not


@pytest.mark.parametrize(
    "options,message",
    [
        (["strategy=freeze"], "strategy 'freeze' option 'patterns': expected at least one"),
        (["strategy=group_average"], "option 'n_samples': expected an int for the continuous group SO3"),
        (["strategy=lora", "rank=eight"], "strategy 'lora' option 'rank': expected int, got str 'eight'"),
        (["strategy=finetune", "rank=2"], "strategy 'finetune': unknown option 'rank'"),
        (["strategy=lora", "rank=2", "strategy_options={rank: 4}"], "rank: expected it once, got 2"),
    ],
)
def test_bad_strategy_options_are_one_line(options, message, checkpoint, tmp_path, capsys):
    assert adapt(checkpoint, tmp_path / "run", *options) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
