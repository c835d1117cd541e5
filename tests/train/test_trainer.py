"""The Trainer: tasks, metrics, seeds, resume, NaN stop, lazy layers, bad input, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch_geometric.loader import DataLoader

from geoadapt import Spec
from geoadapt.data import load
from geoadapt.groups import SO3, Permutation
from geoadapt.models import build
from geoadapt.regularizers import EquivarianceRegularizer
from geoadapt.train import Trainer

ROOT = Path(__file__).resolve().parents[2]


def test_evaluate_reports_task_and_equivariance_metrics(chembl_loaders):
    model = build("naive_gnn")
    trainer = Trainer(model, "regression", [EquivarianceRegularizer(SO3(), model.spec)], max_epochs=2, progress=False)
    trainer.fit(*chembl_loaders)
    metrics = trainer.evaluate(chembl_loaders[1])
    # Independent routes: task metrics from the predictions by hand, the equivariance error by the metrics module
    # with the targets' spread as the scale.
    from geoadapt.metrics import measure_equivariance

    predictor = trainer.predictor()
    with torch.no_grad():
        pred = torch.cat([predictor(b) for b in chembl_loaders[1]]).double()
    y = torch.cat([b.y for b in chembl_loaders[1]]).double()
    assert metrics["rmse"] == pytest.approx(float((pred - y).pow(2).mean().sqrt()), rel=1e-6)
    assert metrics["r2"] == pytest.approx(float(1 - (pred - y).pow(2).sum() / (y - y.mean()).pow(2).sum()), rel=1e-6)
    std = model.target_scaler.std[0]
    m = measure_equivariance(
        predictor, list(chembl_loaders[1]), SO3(), model.spec, 4, torch.Generator().manual_seed(0), scale=std
    )
    assert metrics["equivariance_error"] == pytest.approx(m.error, rel=1e-5) and m.error > 1e-3
    assert metrics["equivariance_abs/1x0e"] == pytest.approx(m.absolute_by_block()["1x0e"], rel=1e-5)
    assert metrics["equivariance_score"] == pytest.approx(m.score, rel=1e-6)
    assert model.target_scaler is not None and len(model.target_scaler.mean) == 1


class CountingModel(nn.Module):
    """Counts forward calls; outputs ``(B,)`` as PyG models for one scalar target often do."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.calls, self.spec = model, 0, model.spec

    def forward(self, data):
        self.calls += 1
        return self.model(data)[:, 0]


def test_scalar_outputs_shaped_b_train_and_validate(chembl_loaders):
    for task in ("regression", "classification"):
        model = CountingModel(build("naive_gnn", hidden=16))
        trainer = Trainer(model, task, [EquivarianceRegularizer(SO3(), model.spec)], max_epochs=2, progress=False)
        loaders = chembl_loaders
        if task == "classification":
            binary = [b.clone() for b in chembl_loaders[0]]
            for b in binary:
                b.y = (b.y > b.y.median()).float()
            loaders = (binary, binary[:1])
        history = trainer.fit(*loaders)
        assert len(history) == 2 and history[-1]["val_equivariance_error"] > 0


def test_evaluate_takes_error_and_consistency_from_one_forward_per_batch(chembl_loaders):
    batches = [b.clone() for b in chembl_loaders[1]]
    for b in batches:
        b.y = (b.y > 0).float()
    model = CountingModel(build("naive_gnn", hidden=16))
    trainer = Trainer(model, "classification", groups=[SO3()], max_epochs=1, progress=False)
    trainer.fit(batches)
    model.calls, model.stack_nodes = 0, 10**9  # no node budget: the batch and its copies fit in one forward
    metrics = trainer.evaluate(batches)
    assert model.calls == 2 * len(batches)  # predictions, then original + copies stacked: no second pass
    assert 0 < metrics["consistency"] <= 1 and metrics["equivariance_error"] > 0


def test_early_stopping_restores_the_best_weights(chembl_loaders):
    torch.manual_seed(0)
    model = build("naive_gnn", hidden=16)
    trainer = Trainer(model, "regression", max_epochs=8, lr=0.05, early_stopping="rmse", patience=3, progress=False)
    history = trainer.fit(*chembl_loaders)
    best = min(range(len(history)), key=lambda i: history[i]["val_rmse"])
    assert best < len(history) - 1  # a later epoch was worse: restoring matters
    assert trainer.evaluate(chembl_loaders[1])["rmse"] == pytest.approx(history[best]["val_rmse"], rel=1e-6)


def test_same_seed_same_metrics(chembl_loaders):
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = build("naive_gnn")
        trainer = Trainer(
            model, "regression", [EquivarianceRegularizer(SO3(), model.spec)], max_epochs=3, seed=5, progress=False
        )
        runs.append(trainer.fit(*chembl_loaders))
    assert runs[0] == runs[1]


def test_resume_ends_where_uninterrupted_run_ends(chembl_loaders, tmp_path):
    def trainer(run_dir, epochs, resume=False):
        torch.manual_seed(0)
        model = build("naive_gnn")
        reg = EquivarianceRegularizer(SO3(), model.spec)
        return Trainer(
            model,
            "regression",
            [reg],
            max_epochs=epochs,
            seed=1,
            run_dir=run_dir,
            resume=resume,
            scheduler="cosine",
            progress=False,
        )

    full = trainer(tmp_path / "full", 4)
    full.fit(*chembl_loaders)
    interrupted = trainer(tmp_path / "part", 4)
    assert len(interrupted.fit(*chembl_loaders, epochs=2)) == 2  # interrupted after 2 of 4 epochs
    assert torch.load(tmp_path / "part" / "last.pt", weights_only=True)["epoch"] == 2
    resumed = trainer(tmp_path / "part", 4, resume=True)
    resumed.fit(*chembl_loaders)
    assert [r["train_loss"] for r in resumed.history] == pytest.approx(
        [r["train_loss"] for r in full.history], rel=1e-6
    )
    assert resumed.evaluate(chembl_loaders[1]) == pytest.approx(full.evaluate(chembl_loaders[1]), rel=1e-6)
    assert (tmp_path / "part" / "metrics.csv").read_text().count("\n") == 5  # header + 4 epochs
    assert len(json.loads((tmp_path / "part" / "history.json").read_text())) == 4


def test_nan_loss_stops_with_message_and_keeps_last_good_checkpoint(chembl_loaders, tmp_path):
    model = build("naive_gnn")
    Trainer(model, "regression", max_epochs=1, run_dir=tmp_path, progress=False).fit(*chembl_loaders)
    before = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    poisoned = [g.clone() for g in chembl_loaders[0].dataset]
    for g in poisoned:
        g.y = torch.full_like(g.y, float("nan"))
    trainer = Trainer(
        model, "regression", max_epochs=3, run_dir=tmp_path, resume=True, progress=False,
        task_options={"normalize_targets": False},
    )  # fmt: skip
    with pytest.raises(FloatingPointError, match=r"loss: expected a finite value, got nan at epoch 1.*last\.pt"):
        trainer.fit(DataLoader(poisoned, batch_size=32))
    after = torch.load(tmp_path / "last.pt", weights_only=True)
    assert after["epoch"] == 1 and all(torch.equal(before[k], after["model"][k]) for k in before)


class LazyPooled(nn.Module):
    """A model whose first layer is created on the first forward."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LazyLinear(16), nn.ReLU(), nn.Linear(16, 2))
        self.spec = Spec(fields={"x": "7x0e"}, output="2x0e", positions=())

    def forward(self, data):
        from torch_geometric.nn import global_add_pool

        return self.net(global_add_pool(data.x, data.batch))


def test_classification_with_lazy_layers_on_mutag():
    dataset = load("mutag")
    loader = DataLoader(dataset[:150], batch_size=32, shuffle=True)
    val = DataLoader(dataset[150:], batch_size=64)
    trainer = Trainer(
        LazyPooled(),
        "classification",
        groups=["perm"],
        max_epochs=5,
        lr=1e-2,
        progress=False,
        early_stopping="accuracy",
        patience=3,
    )
    trainer.fit(loader, val)
    metrics = trainer.evaluate(val)
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "equivariance_error", "consistency"):
        assert key in metrics
    assert metrics["consistency"] == 1.0 and metrics["accuracy"] > 0.5


def test_binary_logit_and_multiclass_heads_on_mutag():
    dataset = load("mutag")
    loader = DataLoader(dataset[:150], batch_size=32)
    for out_dim in (1, 2):
        model = build("gin", in_dim=7, edge_dim=0, out_dim=out_dim)
        trainer = Trainer(model, "classification", groups=[Permutation()], max_epochs=3, progress=False)
        trainer.fit(loader)
        assert 0 <= trainer.evaluate(loader)["accuracy"] <= 1


def test_a_classifier_that_predicts_one_class_is_reported():
    dataset = load("mutag")
    loader = DataLoader(dataset[:150], batch_size=32)
    model = build("gin", in_dim=7, edge_dim=0, out_dim=1)
    head = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():  # every logit +50: class 1 for every graph, whatever the input
        head.weight.zero_()
        head.bias.fill_(50.0)
    trainer = Trainer(model, "classification", max_epochs=1, lr=1e-12, progress=False)
    trainer.fit(loader, loader)
    labels = float(torch.cat([b.y for b in loader]).float().mean())
    last = trainer.history[-1]
    assert last["val_predicted_majority"] == 1.0 and last["val_label_majority"] == pytest.approx(
        max(labels, 1 - labels)
    )
    (warning,) = [w for w in trainer.warnings if "collapsed" in w]
    assert "100% of validation predictions are one class" in warning


def test_bad_names_are_rejected():
    model = build("naive_gnn")
    with pytest.raises(ValueError, match="strategy: expected one of"):
        Trainer(model, strategy="distill")
    with pytest.raises(ValueError, match="group name: expected one of"):
        Trainer(model, groups=["so4"])
    with pytest.raises(ValueError, match="task: expected one of"):
        Trainer(model, task="ranking")


def test_early_stopping_metric_must_exist(chembl_loaders):
    trainer = Trainer(build("naive_gnn"), max_epochs=2, early_stopping="accuracy", progress=False)
    with pytest.raises(ValueError, match="early_stopping: expected a validation metric"):
        trainer.fit(*chembl_loaders)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_ddp_two_processes_match_one(tmp_path):
    script = ROOT / "tests" / "train" / "ddp_run.py"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "one.json")], env=env, capture_output=True, text=True, timeout=300
    )
    assert single.returncode == 0, single.stderr[-2000:]
    double = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={_free_port()}",
            str(script),
            str(tmp_path / "two.json"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert double.returncode == 0, double.stderr[-2000:]
    one, two = json.loads((tmp_path / "one.json").read_text()), json.loads((tmp_path / "two.json").read_text())
    assert two["train_loss"] == pytest.approx(one["train_loss"], rel=1e-4)
    assert two["metrics"]["rmse"] == pytest.approx(one["metrics"]["rmse"], rel=1e-4)


def test_evaluate_infers_a_group_when_none_is_named(chembl_loaders):
    trainer = Trainer(build("naive_gnn"), "regression", max_epochs=1, progress=False)
    trainer.fit(chembl_loaders[0])
    metrics = trainer.evaluate(chembl_loaders[1])
    assert metrics["equivariance_error"] > 1e-3 and repr(trainer.groups[0]) == "SO3"
    silent = Trainer(build("naive_gnn"), "regression", groups=[], max_epochs=1, progress=False)
    silent.fit(chembl_loaders[0])
    assert "equivariance_error" not in silent.evaluate(chembl_loaders[1])


def test_node_level_vector_regression_on_md17_forces():
    from geoadapt.data import load as load_data

    frames = []
    for frame in load_data("md17_ethanol"):
        frame = frame.clone()
        frame.x = torch.nn.functional.one_hot(frame.z, 10).float()
        frame.y = frame.force
        frames.append(frame)
    model = build("egnn", in_dim=10, output="1o", output_level="node", hidden=16, num_layers=2)
    trainer = Trainer(model, "regression", max_epochs=3, lr=1e-3, progress=False)
    history = trainer.fit(DataLoader(frames[:16], batch_size=4, shuffle=True), DataLoader(frames[16:], batch_size=4))
    norm = model.target_scaler
    assert norm.mean == [0.0, 0.0, 0.0] and len(set(norm.std)) == 1  # vector targets share one scale
    assert history[-1]["val_equivariance_error"] < 1e-4 and "val_rmse" in history[-1]


def test_step_scheduler_options_follow_the_given_schedule(chembl_loaders):
    model = build("naive_gnn")
    trainer = Trainer(
        model,
        "regression",
        max_epochs=4,
        lr=0.01,
        scheduler="step",
        scheduler_options={"step_size": 2, "gamma": 0.5},
        progress=False,
    )
    lrs = [row["lr"] for row in trainer.fit(chembl_loaders[0])]
    assert lrs == pytest.approx([0.01, 0.01, 0.005, 0.005])  # the lr in force during each epoch
    bad = Trainer(build("naive_gnn"), "regression", scheduler="step", scheduler_options={"steps": 2}, progress=False)
    with pytest.raises(ValueError, match=r"scheduler_options: expected keyword arguments of StepLR, got \['steps'\]"):
        bad.fit(chembl_loaders[0])


def test_moved_metrics_equal_plain_ones_for_an_invariant_model_only(chembl_loaders):
    from geoadapt.experiments import moved_metrics

    train, val = chembl_loaders
    for name, invariant in (("schnet", True), ("naive_gnn", False)):
        torch.manual_seed(0)
        trainer = Trainer(build(name), "regression", max_epochs=1, seed=0, progress=False, groups=[])
        trainer.fit(train, val)
        plain, moved = trainer.evaluate(val), moved_metrics(trainer, val, SO3(), seed=0)
        assert set(moved) == {f"moved_{k}" for k in ("mse", "mae", "rmse", "r2")}
        gap = abs(moved["moved_rmse"] - plain["rmse"])
        # SchNet reads distances only: moving the molecules changes nothing but float32 round-off; the naive GNN
        # reads coordinates and scores differently on molecules in other frames.
        assert gap < 1e-4 if invariant else gap > 1e-3, (name, gap)
        assert trainer.task_metrics(val) == plain and trainer.model.training  # evaluate's, without groups here
    assert moved_metrics(trainer, val, SO3(), seed=0) == moved_metrics(trainer, val, SO3(), seed=0)  # seeded
