"""Predictions of a model on new inputs, in target units: ``geoadapt.predict(model, data)``.

Each prediction can carry its own equivariance error under the model's group and its symmetrized value, so the
inputs a model treats inconsistently stand out; rows that cannot be featurized are listed, never dropped.
``geoadapt predict`` streams a library of any size through the same loop, writing as it goes.

Modules: :mod:`~.target_units` (the predictor in target units and the task), :mod:`~.sources` (what is read),
:mod:`~.featurizer` (SMILES to graphs on every core), :mod:`~.scoring` (one batch), :mod:`~.symmetrized`,
:mod:`~.table` (the predictions), :mod:`~.run` (the chunk loop), :mod:`~.writer` (resumable CSV files),
:mod:`~.progress`, :mod:`~.api` (:func:`predict`, :func:`predict_to_csv`).
"""

from geoadapt.prediction.api import metrics_from_csv, predict, predict_to_csv
from geoadapt.prediction.table import Failure, Predictions
from geoadapt.prediction.target_units import TargetPredictor, resolve_predictor

__all__ = [
    "Failure",
    "Predictions",
    "TargetPredictor",
    "metrics_from_csv",
    "predict",
    "predict_to_csv",
    "resolve_predictor",
]
