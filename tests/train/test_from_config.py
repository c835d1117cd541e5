"""One Trainer builder for every configuration, and one pretraining pipeline for the API and the command line."""

from __future__ import annotations

import inspect

import pytest
import torch

import geoadapt
from geoadapt.checkpoints import load
from geoadapt.cli import main
from geoadapt.cli.keys import DEFAULTS
from geoadapt.errors import ConfigError
from geoadapt.groups import SO3, Permutation
from geoadapt.models import build
from geoadapt.train.from_config import trainer_from_config


def test_configuration_keys_become_trainer_arguments():
    config = {"epochs": 3, "lr": 0.02, "seed": 7, "groups": ["perm"], "early_stopping": "rmse", "patience": 2}
    trainer = trainer_from_config(build("naive_gnn", hidden=16), {**config, "progress": False, "device": "cpu"})
    options = trainer.options
    assert (options.max_epochs, options.lr, options.seed, options.patience) == (3, 0.02, 7, 2)
    assert options.early_stopping == "rmse" and [repr(g) for g in trainer.groups] == ["Permutation()"]
    assert trainer.device == torch.device("cpu") and trainer.strategy.name == "finetune"


def test_absent_keys_keep_the_trainers_defaults():
    trainer = trainer_from_config(build("naive_gnn", hidden=16), {})
    defaults = inspect.signature(geoadapt.Trainer).parameters
    assert trainer.options.max_epochs == defaults["max_epochs"].default
    assert trainer.options.lr == defaults["lr"].default
    assert trainer.infer_groups  # no groups key: the Trainer measures the group it infers from the data


def test_augment_is_the_augment_strategy_under_its_group():
    trainer = trainer_from_config(build("naive_gnn", hidden=16), {"augment": "so3", "groups": ["perm"]})
    assert trainer.strategy.name == "augment" and [repr(g) for g in trainer.groups] == ["SO3"]
    with pytest.raises(ConfigError, match="augment: expected no strategy beside it"):
        trainer_from_config(build("naive_gnn", hidden=16), {"augment": "so3"}, strategy="lora")


def test_task_options_go_to_the_task_they_name():
    from geoadapt.tasks import Potential, Regression

    model = build("naive_gnn", hidden=16)
    options = {"energy_weight": 0.0, "force_weight": 2.0, "stress_weight": 0.5}
    with pytest.raises(ValueError, match="potential task: expected a model whose output is a graph-level energy"):
        trainer_from_config(build("naive_gnn", hidden=16, out_dim=2), {"task_options": options}, "potential")
    trainer = trainer_from_config(model, {"task_options": options}, "potential", groups=[])
    assert isinstance(trainer.task, Potential)
    weights = trainer.task.weights
    assert (weights.energy_weight, weights.force_weight, weights.stress_weight) == (0.0, 2.0, 0.5)
    with pytest.raises(ValueError, match=r"task_options: expected keys among \['normalize_targets', "):
        trainer_from_config(model, {"task_options": options}, "regression", groups=[])
    regression = trainer_from_config(model, {"task_options": {"normalize_targets": False}}, "regression", groups=[])
    assert isinstance(regression.task, Regression) and not regression.task.normalize_targets


def test_pretrain_and_the_command_line_share_their_defaults():
    parameters = inspect.signature(geoadapt.pretrain).parameters
    for key in ("epochs", "lr", "batch_size", "seed"):
        assert parameters[key].default == DEFAULTS["pretrain"][key], key


def test_pretrain_and_the_command_line_train_the_same_model(tmp_path, capsys):
    """The same settings through ``geoadapt.pretrain`` and ``geoadapt pretrain``: the same weights, target
    standardization and record (the augmentation group by its name, the epochs)."""
    settings = {"epochs": 1, "limit": 48, "lr": 3e-3, "batch_size": 16, "augment": "so3", "seed": 3}
    geoadapt.pretrain("naive_gnn", "rdkit_nci5k", tmp_path / "api.pt", progress=False, **settings)
    argv = ["pretrain", "model=naive_gnn", "data=rdkit_nci5k", f"out={tmp_path / 'run'}", "progress=false"]
    assert main([*argv, *(f"{k}={v}" for k, v in settings.items())]) == 0, capsys.readouterr().err
    api, cli = load(tmp_path / "api.pt"), load(tmp_path / "run" / "model.pt")
    assert api.checkpoint["extra"] == cli.checkpoint["extra"] == {"task": "regression", "augment": "SO3", "epochs": 1}
    assert api.scaler == cli.scaler is not None and api.scaler.mean != [0.0]
    api_state, cli_state = api.network.state_dict(), cli.network.state_dict()
    assert api_state.keys() == cli_state.keys()
    assert all(torch.equal(api_state[k], cli_state[k]) for k in api_state)
    other = dict(settings, seed=4)
    geoadapt.pretrain("naive_gnn", "rdkit_nci5k", tmp_path / "other.pt", progress=False, **other)
    other_state = load(tmp_path / "other.pt").network.state_dict()
    assert not torch.equal(other_state["head.2.weight"], api_state["head.2.weight"])


def test_pretrain_passes_trainer_options_on():
    model, metrics = geoadapt.pretrain(
        "naive_gnn", "rdkit_nci5k", epochs=1, limit=48, augment=SO3(), progress=False, groups=[SO3(), Permutation()]
    )
    assert "equivariance_error/SO3" in metrics and "equivariance_error/Permutation()" in metrics
