"""Run folders keep what they must: no foreign folder deleted, one run per folder, Ctrl-C and kill -9 resumable.

The interrupt and concurrency tests drive real ``geoadapt`` processes.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from geoadapt.checkpoints import save
from geoadapt.cli import main
from geoadapt.models import build
from geoadapt.runs import MARKER, RunFolderError, run_folder

REPO = Path(__file__).resolve().parents[1]
# The child restores Python's Ctrl-C handler: a shell or test runner may start it with SIGINT ignored.
CHILD = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "from geoadapt.cli import main; sys.exit(main(sys.argv[1:]))"
)


def start(argv: list[str], cwd: Path) -> subprocess.Popen:
    """``geoadapt <argv>`` as a separate process in ``cwd``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *argv],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before {path.name} appeared: {proc.communicate()}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear in {timeout} s")
        time.sleep(0.05)


def summary(folder: Path) -> dict:
    values = json.loads((folder / "summary.json").read_text())
    values.pop("run")  # the folder's name
    return values


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    save(build("naive_gnn", hidden=16, num_layers=2), path)
    return path


def adapt_args(checkpoint: Path, out: str, epochs: int = 6) -> list[str]:
    # The constrained regularizer carries state across epochs (its multiplier): resuming must restore it.
    return [
        "adapt",
        f"checkpoint={checkpoint}",
        "data=rdkit_chembl2321810",
        "limit=60",
        f"epochs={epochs}",
        "batch_size=16",
        "progress=false",
        "regularizers=[so3]",
        "constrained={epsilon: 0.001, dual_lr: 5.0}",
        f"out={out}",
    ]


# --- the run folder itself -------------------------------------------------------------------------
def test_run_folder_marks_what_it_makes_and_publishes_only_on_success(tmp_path):
    with run_folder(tmp_path / "run") as folder:
        assert folder.name == "run.partial" and (folder / MARKER).is_file()
        assert (tmp_path / "run.lock").is_file()
        (folder / "last.pt").write_text("state")
    assert (tmp_path / "run" / MARKER).is_file() and not (tmp_path / "run" / "last.pt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no partial folder, no lock file left
    with pytest.raises(RunFolderError, match="got existing .*run \\(pass overwrite=true\\)"):
        with run_folder(tmp_path / "run"):
            pass
    with run_folder(tmp_path / "run", overwrite=True) as folder:
        (folder / "new.txt").write_text("new")
    assert (tmp_path / "run" / "new.txt").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_a_failed_run_keeps_its_partial_folder_only_with_a_checkpoint(tmp_path):
    with pytest.raises(KeyError), run_folder(tmp_path / "a"):
        raise KeyError("before the first epoch")
    assert not (tmp_path / "a.partial").exists()
    with pytest.raises(KeyboardInterrupt), run_folder(tmp_path / "b") as folder:
        (folder / "last.pt").write_text("state")
        raise KeyboardInterrupt
    assert (tmp_path / "b.partial" / "last.pt").is_file() and not (tmp_path / "b").exists()
    with pytest.raises(RunFolderError, match="holds an interrupted run; continue it with resume=true"):
        with run_folder(tmp_path / "b"):
            pass
    with run_folder(tmp_path / "b", resume=True) as folder:
        assert (folder / "last.pt").read_text() == "state"


def test_resume_refuses_other_settings(tmp_path):
    config = {"epochs": 5, "lr": 0.001, "resume": False, "progress": True}
    with pytest.raises(KeyboardInterrupt), run_folder(tmp_path / "r", config=config) as folder:
        (folder / "last.pt").write_text("state")
        raise KeyboardInterrupt
    with pytest.raises(RunFolderError, match=r"used lr=0.001, got lr=0.002"):
        with run_folder(tmp_path / "r", resume=True, config={**config, "lr": 0.002}):
            pass
    with run_folder(tmp_path / "r", resume=True, config={**config, "resume": True, "progress": False}):
        pass


def test_overwrite_never_deletes_a_folder_geoadapt_did_not_make(tmp_path, capsys):
    mine = tmp_path / "my_notes"
    mine.mkdir()
    (mine / "notes.txt").write_text("a week of work")
    code = main(["pretrain", "model=naive_gnn", "data=rdkit_nci5k", f"out={mine}", "overwrite=true", "limit=40"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(mine) in err and "not made by geoadapt" in err
    assert (mine / "notes.txt").read_text() == "a week of work"
    partial = tmp_path / "other.partial"
    partial.mkdir()
    (partial / "data.csv").write_text("x")
    code = main(["pretrain", "model=naive_gnn", "data=rdkit_nci5k", f"out={tmp_path / 'other'}", "overwrite=true"])
    assert code == 2 and "not made by geoadapt" in capsys.readouterr().err and (partial / "data.csv").is_file()


# --- real processes --------------------------------------------------------------------------------
def test_a_second_run_on_the_same_out_fails_at_once(checkpoint, tmp_path):
    first = start(adapt_args(checkpoint, "run", epochs=5000), tmp_path)  # still running when killed
    wait_for(tmp_path / "run.partial" / "config.yaml", first)
    second = subprocess.run(
        [sys.executable, "-m", "geoadapt", *adapt_args(checkpoint, "run", epochs=2)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert second.returncode == 2 and "another geoadapt run is writing" in second.stderr, second.stderr
    assert len(second.stderr.strip().splitlines()) == 1 and "Traceback" not in second.stderr
    assert first.poll() is None, "the first run must still be going"
    first.kill()
    first.communicate()
    assert (tmp_path / "run.partial").is_dir() and not (tmp_path / "run").exists()


def test_ctrl_c_keeps_the_run_and_prints_the_command_that_resumes_it(tmp_path, capsys, monkeypatch):
    argv = ["pretrain", "model=naive_gnn", "data=rdkit_nci5k", "limit=60", "epochs=12", "out=pre", "progress=false"]
    proc = start(argv, tmp_path)
    wait_for(tmp_path / "pre.partial" / "last.pt", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "interrupted after" in err and str(tmp_path / "pre.partial") in err
    assert (tmp_path / "pre.partial" / "last.pt").is_file() and not (tmp_path / "pre").exists()
    command = shlex.split(err.split("resume with: ")[1])
    assert command[0] == "geoadapt" and command[-1] == "resume=true"
    monkeypatch.chdir(tmp_path)  # the printed command is relative to where the run was started
    assert main(command[1:]) == 0, capsys.readouterr().err
    history = json.loads((tmp_path / "pre" / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(12))


def test_kill_9_then_resume_ends_as_an_uninterrupted_run(checkpoint, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    proc = start(adapt_args(checkpoint, "killed"), tmp_path)
    wait_for(tmp_path / "killed.partial" / "last.pt", proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not (tmp_path / "killed").exists(), "the run must have been killed before it finished"
    done = torch.load(tmp_path / "killed.partial" / "last.pt", weights_only=True)["epoch"]
    assert 1 <= done < 6
    assert main(adapt_args(checkpoint, "killed")) == 2  # an interrupted run is not silently started again
    assert "resume=true" in capsys.readouterr().err
    assert main([*adapt_args(checkpoint, "killed"), "resume=true"]) == 0
    assert main(adapt_args(checkpoint, "uninterrupted")) == 0
    resumed, uninterrupted = summary(tmp_path / "killed"), summary(tmp_path / "uninterrupted")
    assert resumed["epochs"] == 6 and any(k.endswith("/multiplier") for k in resumed)
    assert resumed == uninterrupted
    assert not (tmp_path / "killed.partial").exists() and not (tmp_path / "killed.lock").exists()


def test_an_existing_out_is_refused_before_any_work(checkpoint, tmp_path, capsys):
    existing = tmp_path / "taken"
    existing.mkdir()
    for argv in (
        [*adapt_args(checkpoint, str(existing), epochs=1)],
        ["pretrain", "model=naive_gnn", "data=rdkit_chembl2321810", f"out={existing}", "limit=30", "epochs=1"],
    ):
        assert main(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and f"out: expected a new run folder, got existing {existing}" in captured.err
        assert list(existing.iterdir()) == [] and not list(tmp_path.glob("*.partial"))
