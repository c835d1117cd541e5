"""Progress in any log (a bar on a terminal, one line per epoch elsewhere, nothing with progress=False) and the
plots of a run folder, the same from ``Trainer(run_dir=...)`` and from the command line."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path

import torch

from geoadapt.groups import SO3
from geoadapt.models import build
from geoadapt.train import Trainer
from geoadapt.train.progress import Progress

ROOT = Path(__file__).resolve().parents[2]
LINE = re.compile(
    r"^epoch (\d+)/(\d+) \| elapsed \d+:\d\d:\d\d, eta \d+:\d\d:\d\d \| train_loss \S+ \| val_rmse \S+ \| "
    r"val_equivariance_error \S+$"
)
PLOTS = {"loss.png", "metrics.png", "equivariance_error.png", "error_vs_angle.png"}


def test_one_plain_line_per_epoch_when_stderr_is_not_a_terminal(chembl_loaders, capsys):
    torch.manual_seed(0)
    Trainer(build("naive_gnn", hidden=16), "regression", groups=[SO3()], max_epochs=3).fit(*chembl_loaders)
    lines = capsys.readouterr().err.strip().splitlines()
    assert [LINE.match(line).group(1, 2) for line in lines] == [("1", "3"), ("2", "3"), ("3", "3")], lines
    torch.manual_seed(0)
    Trainer(build("naive_gnn", hidden=16), "regression", max_epochs=2, progress=False).fit(*chembl_loaders)
    assert capsys.readouterr().err == ""


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_bar_and_a_log_the_numbers():
    row = {"epoch": 1, "train_loss": 0.5, "val_accuracy": 0.75, "val_equivariance_error": 2e-5, "lr": 1e-3}
    log, terminal = io.StringIO(), Terminal()
    Progress(None, 0, 4, "accuracy", log).epoch_done(row)
    assert re.fullmatch(r"epoch 2/4 \| .* \| train_loss 0.5 \| val_accuracy 0.75 \| val_equivariance_error 2.000e-05\n",
                        log.getvalue())  # fmt: skip
    bar = Progress(True, 0, 4, "accuracy", terminal)
    bar.epoch_done(row)
    bar.close()
    assert bar.mode == "bar" and "epochs" in terminal.getvalue() and "\r" in terminal.getvalue()
    assert Progress(False, 0, 4, "accuracy", Terminal()).mode == "off"


def test_adapt_piped_to_a_log_file_leaves_one_line_per_epoch(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    argv = ["adapt", "model=naive_gnn", "data=rdkit_chembl2321810", "limit=60", "epochs=3", "groups=[so3]"]
    with (tmp_path / "run.log").open("w") as log:
        done = subprocess.run([sys.executable, "-m", "geoadapt", *argv, f"out={tmp_path / 'run'}"], stderr=log,
                              stdout=subprocess.PIPE, text=True, env=env, timeout=600)  # fmt: skip
    text = (tmp_path / "run.log").read_text()
    assert done.returncode == 0, text
    epochs = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert [LINE.match(line).group(1, 2) for line in epochs] == [("1", "3"), ("2", "3"), ("3", "3")], text
    assert "\r" not in text  # no bar redrawn into the file
    assert PLOTS <= {p.name for p in (tmp_path / "run").iterdir()}


def test_the_trainer_writes_the_plots_of_the_command_line(chembl_loaders, tmp_path, monkeypatch):
    import geoadapt.plots

    drawn = {}
    save = geoadapt.plots.save_figures

    def keep(folder, figures, dpi=110):
        drawn.update(figures)
        return save(folder, figures, dpi)

    monkeypatch.setattr(geoadapt.plots, "save_figures", keep)
    torch.manual_seed(0)
    model = build("naive_gnn", hidden=16)
    trainer = Trainer(model, "regression", groups=[SO3()], max_epochs=2, run_dir=tmp_path / "esol", progress=False)
    trainer.fit(*chembl_loaders)
    assert PLOTS <= {p.name for p in (tmp_path / "esol").iterdir()} and set(drawn) == PLOTS
    angle = drawn["error_vs_angle.png"].axes[0]
    assert angle.get_xlabel() == "rotation about z (degrees)"
    assert angle.get_ylabel() == "equivariance error\n(relative to the targets' spread)"
    assert angle.get_title() == "esol: equivariance error vs rotation angle"
    assert len(trainer.error_by_angle) == 12 and max(trainer.error_by_angle.values()) > 0


def test_no_plots_without_a_run_folder(chembl_loaders, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Trainer(build("naive_gnn", hidden=16), "regression", max_epochs=1, progress=False).fit(chembl_loaders[0])
    assert list(tmp_path.iterdir()) == []
