"""One answer in target units: a loaded regressor's forward, ``Trainer.evaluate`` and ``geoadapt evaluate`` agree."""

from __future__ import annotations

import json

import pytest
import torch

from geoadapt.checkpoints import load, save
from geoadapt.cli import main
from geoadapt.groups import SO3
from geoadapt.models import Predictor, build
from geoadapt.train import Trainer
from geoadapt.train.pretrain import loader_for, source_splits

DATA, LIMIT, SAMPLES = "rdkit_chembl2321810", 80, 3


@pytest.fixture(scope="module")
def adapted(tmp_path_factory):
    """A naive GNN trained on ChEMBL activities (about 5.6, far from a standardized 0), saved, and its Trainer."""
    train, val = source_splits(DATA, LIMIT, False)
    torch.manual_seed(0)
    trainer = Trainer(build("naive_gnn", hidden=16), "regression", groups=[SO3()], max_epochs=2, lr=3e-3,
                      eq_samples=SAMPLES, seed=0, progress=False)  # fmt: skip
    trainer.fit(loader_for(train, 16, True))
    path = save(
        trainer.predictor(), tmp_path_factory.mktemp("run") / "model.pt", dataset=DATA, extra={"task": "regression"}
    )
    return trainer, path, val


def test_a_loaded_regressor_answers_in_target_units(adapted):
    trainer, path, val = adapted
    model = load(path).eval()
    assert isinstance(model, Predictor) and "forward returns target units" in repr(model)
    batch = next(iter(loader_for(val, 128, False)))
    with torch.no_grad():
        loaded, expected, raw = model(batch), trainer.predictor()(batch), model.network(batch)
    assert torch.equal(loaded, expected)
    assert 4.5 < float(loaded.mean()) < 7.0 and float(raw.abs().mean()) < 3  # activities, not standardized values
    by_hand = raw * torch.tensor(trainer.task.scaler.std) + torch.tensor(trainer.task.scaler.mean)
    assert torch.allclose(loaded, by_hand, rtol=1e-6, atol=0)


def test_evaluate_the_command_and_the_loaded_forward_agree(adapted, capsys):
    trainer, path, val = adapted
    batches = [b for b, _ in zip(loader_for(val, 128, False), range(4))]  # what geoadapt evaluate measures
    metrics = trainer.evaluate(batches)
    model = load(path).eval()
    with torch.no_grad():
        pred = torch.cat([model(b) for b in batches]).double()
    y = torch.cat([b.y for b in batches]).double()
    assert metrics["rmse"] == pytest.approx(float((pred - y).pow(2).mean().sqrt()), rel=1e-6)
    argv = ["evaluate", f"checkpoint={path}", f"data={DATA}", "split=val", f"limit={LIMIT}", "groups=so3"]
    assert main([*argv, f"samples={SAMPLES}", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)["groups"]
    assert row["absolute"]["1x0e"] == pytest.approx(metrics["equivariance_abs/1x0e"], rel=1e-6)  # target units
    assert row["error"] == pytest.approx(metrics["equivariance_error"], rel=1e-6)  # relative to the targets' spread
    assert metrics["equivariance_abs/1x0e"] > 1e-4  # the naive GNN is not invariant: a comparison of something
