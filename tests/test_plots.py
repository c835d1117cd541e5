"""geoadapt.plots: figures from plain history rows and numbers, labelled with what they show."""

from __future__ import annotations

import math

import pytest

from geoadapt.plots import curves_figure, epoch_curves, error_vs_angle_figure, history_figures, save_figures


def test_error_vs_angle_is_drawn_in_degrees_and_says_what_the_error_is_relative_to():
    angles = [math.pi / 4, math.pi / 2, math.pi]
    fig = error_vs_angle_figure({"finetune": (angles, [0.1, 0.2, 0.3]), "constrained": (angles, [0.01, 0.02, 0.03])},
                                "the targets' spread", title="run", log=True)  # fmt: skip
    ax = fig.axes[0]
    assert [list(line.get_xdata()) for line in ax.lines] == [pytest.approx([45.0, 90.0, 180.0])] * 2
    assert ax.get_xlabel() == "rotation about z (degrees)" and ax.get_yscale() == "log"
    assert ax.get_ylabel() == "equivariance error\n(relative to the targets' spread)"
    assert ax.get_title() == "run: equivariance error vs rotation angle"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["finetune", "constrained"]


def test_history_rows_become_curves_per_key_with_gaps_where_a_row_lacks_the_key():
    history = [{"epoch": 0.0, "train_loss": 2.0}, {"epoch": 1.0, "train_loss": 1.0, "val_rmse": 0.5}]
    curves = epoch_curves(history, ["train_loss", "val_rmse"])
    assert curves["train_loss"] == ([0, 1], [2.0, 1.0])
    assert curves["val_rmse"][0] == [0, 1] and math.isnan(curves["val_rmse"][1][0]) and curves["val_rmse"][1][1] == 0.5


def test_the_equivariance_plot_shows_one_curve_per_group_when_there_are_several(tmp_path):
    history = [{"epoch": float(e), "val_equivariance_error": 0.1, "val_equivariance_error/SO3": 0.1,
                "val_equivariance_error/Permutation()": 1e-7} for e in range(3)]  # fmt: skip
    figures = history_figures(history, relative_to="the forces' spread")
    labels = [t.get_text() for t in figures["equivariance_error.png"].axes[0].get_legend().get_texts()]
    assert labels == ["val_equivariance_error/Permutation()", "val_equivariance_error/SO3"]
    assert "error_vs_angle.png" not in figures  # no angles given: no curve
    paths = save_figures(tmp_path, figures)
    assert [p.name for p in paths] == ["equivariance_error.png"] and paths[0].stat().st_size > 0


def test_a_plain_curve_keeps_its_labels():
    fig = curves_figure({"plain": ([0, 90], [0.9, 0.5])}, "rotation (degrees)", "test accuracy", what="accuracy")
    ax = fig.axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("rotation (degrees)", "test accuracy", "accuracy")
