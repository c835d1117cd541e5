"""``geoadapt.predict`` and ``geoadapt predict`` answer in target units: row by row what ``Trainer.predictor()``
answers, with the metrics ``Trainer.evaluate`` reports, and every row that cannot be featurized listed."""

from __future__ import annotations

import csv

import pytest
import torch

import geoadapt
from geoadapt.cli import EXIT_BAD_INPUT, EXIT_OK, main
from geoadapt.metrics import predicted_class
from geoadapt.prediction import metrics_from_csv, predict_to_csv
from tests.prediction.conftest import write_csv


def trainer_side(fitted) -> dict[int, torch.Tensor]:
    """What the Trainer predicts for each molecule (its row), through ``trainer.predictor()``."""
    predictor = fitted.trainer.predictor()
    out = {}
    with torch.no_grad():
        for batch in fitted.loader():
            for row, value in zip(batch.mol_id.tolist(), predictor(batch)):
                out[row] = value
    return out


def same_metrics(ours: dict, theirs: dict, names: tuple[str, ...]) -> None:
    for name in names:
        assert ours[name] == pytest.approx(theirs[name], rel=1e-5, abs=1e-7), name


def test_regression_predictions_are_the_trainers_in_target_units(regressor):
    predictions = geoadapt.predict(regressor.model, regressor.data)
    expected = trainer_side(regressor)
    assert predictions.task.name == "regression" and sorted(predictions.rows) == sorted(expected)
    for row, value in zip(predictions.rows, predictions.values):
        assert torch.allclose(value, expected[row], atol=1e-5), row
    raw = regressor.model.network(next(iter(regressor.loader())))  # the network alone: standardized values
    assert not torch.allclose(raw[0], expected[0], atol=1e-2)
    evaluated = regressor.trainer.evaluate(regressor.loader())
    same_metrics(predictions.metrics(), evaluated, ("rmse", "mae", "r2"))
    assert predictions.metrics()["rows"] == len(regressor.data)


def test_classifier_predictions_are_probabilities_and_the_trainers_labels(classifier):
    predictions = geoadapt.predict(classifier.model, classifier.data)
    expected = trainer_side(classifier)
    logits = torch.stack([expected[row] for row in predictions.rows])
    assert predictions.task.name == "classification"
    assert torch.allclose(predictions.values, torch.sigmoid(logits), atol=1e-6)
    assert torch.equal(predictions.labels, predicted_class(logits))
    same_metrics(predictions.metrics(), classifier.trainer.evaluate(classifier.loader()), ("accuracy", "f1", "roc_auc"))


def test_smiles_of_a_csv_predict_as_their_graphs_and_failures_are_listed(regressor, tmp_path):
    extra = [("C1CC", "1.0"), ("", "2.0"), ("CCO", "")]
    path = write_csv(tmp_path / "mols.csv", regressor.data, extra)
    from_graphs = geoadapt.predict(regressor.model, regressor.data)
    from_csv = geoadapt.predict(regressor.model, path, target_columns=["target"], id_column="name", workers=2)
    by_smiles = dict(zip(from_graphs.smiles, from_graphs.values))
    n = len(regressor.data)
    assert from_csv.rows == list(range(n)) + [n + 2] and from_csv.keys[:2] == ["m0", "m1"]
    for smiles, value in zip(from_csv.smiles[:n], from_csv.values):
        assert torch.allclose(value, by_smiles[smiles], atol=1e-5), smiles  # same conformers, same predictions
    failed = [(f.row, f.smiles, f.reason, f.key) for f in from_csv.failed]
    assert failed == [(n, "C1CC", "parse", "extra"), (n + 1, "", "empty", "extra")]
    assert torch.isnan(from_csv.targets[-1]).all()  # a row without a target is predicted, then left out of metrics
    assert from_csv.metrics()["rows"] == n
    same_metrics(from_csv.metrics(), regressor.trainer.evaluate(regressor.loader()), ("rmse", "mae"))


def test_the_file_written_gives_the_trainers_metrics(regressor, classifier, tmp_path):
    for fitted in (regressor, classifier):
        out = tmp_path / f"{fitted.trainer.task.name}.csv"
        path = write_csv(tmp_path / f"{fitted.trainer.task.name}-in.csv", fitted.data)
        summary = predict_to_csv(fitted.model, path, out, target_columns=["target"], chunk_size=16)
        assert summary["predicted"] == len(fitted.data) and summary["failed"] == 0
        names = ("rmse", "mae", "r2") if fitted.trainer.task.name == "regression" else ("accuracy", "roc_auc", "f1")
        same_metrics(metrics_from_csv(out, fitted.trainer.task), fitted.trainer.evaluate(fitted.loader()), names)
        assert summary["metrics"] == metrics_from_csv(out, fitted.trainer.task)
        header = next(csv.reader(out.open()))
        expected = ["prediction"] if fitted.trainer.task.name == "regression" else ["probability", "label"]
        assert header == ["row", "smiles", *expected, "target"]


def test_a_task_that_contradicts_the_checkpoint_is_refused(regressor):
    with pytest.raises(ValueError, match="task: expected 'regression' .*, got 'classification'"):
        geoadapt.predict(regressor.model, regressor.data, task="classification")


def test_the_command_writes_predictions_and_says_the_metrics(regressor, tmp_path, capsys):
    path = write_csv(tmp_path / "mols.csv", regressor.data, [("C1CC", "0")])
    argv = ["predict", f"checkpoint={regressor.path}", f"data={path}", f"out={tmp_path / 'p.csv'}"]
    code = main([*argv, "target_columns=[target]", "id_column=name", "progress=false", "workers=1"])
    out, err = capsys.readouterr()
    n = len(regressor.data)
    assert code == EXIT_OK, err
    assert f"predicted {n} of {n + 1} rows" in out and "1 could not be featurized" in out and "rmse" in out
    rows = list(csv.DictReader((tmp_path / "p.csv").open()))
    assert len(rows) == n and rows[0]["id"] == "m0" and float(rows[0]["prediction"]) != 0
    failed = list(csv.DictReader((tmp_path / "p.failed.csv").open()))
    assert failed == [{"row": str(n), "id": "extra", "smiles": "C1CC", "reason": "parse"}]
    assert main(argv) == EXIT_BAD_INPUT and "exists; pass overwrite=true" in capsys.readouterr().err


def test_evaluate_takes_the_csv_keys_adapt_takes(regressor, tmp_path, capsys):
    path = write_csv(tmp_path / "mols.csv", regressor.data)
    argv = ["evaluate", f"checkpoint={regressor.path}", f"data={path}", "target_columns=[target]", "split=train"]
    code = main([*argv, "task=regression", "smiles_column=smiles", "groups=so3", "samples=2", "--json"])
    out, err = capsys.readouterr()
    assert code == EXIT_OK, err
    assert '"groups"' in out
    assert main([*argv, "task=classification"]) == EXIT_BAD_INPUT
    assert (
        "task: expected 'regression' (the task the checkpoint records), got 'classification'" in capsys.readouterr().err
    )
