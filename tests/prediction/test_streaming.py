"""``geoadapt predict`` at screening scale: the input is read a chunk ahead (never whole), each chunk is written as it
comes, an interrupted run (Ctrl-C, ``kill -9``) keeps what it wrote and ``resume=true`` finishes the same file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from geoadapt.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, main
from geoadapt.cli.runs import kept_predictions
from geoadapt.prediction import predict_to_csv, resolve_predictor
from geoadapt.prediction.run import iter_predictions
from geoadapt.prediction.scoring import ScoreOptions
from geoadapt.prediction.sources import open_source
from geoadapt.prediction.writer import StreamingCsv
from tests.prediction.conftest import write_csv

ROOT = Path(__file__).resolve().parents[2]


def keys(regressor, path: Path) -> list[str]:
    return [f"checkpoint={regressor.path}", f"data={path}", "target_columns=[target]", "with_equivariance=true",
            "chunk_size=4", "workers=1", "progress=false"]  # fmt: skip


def test_rows_are_read_one_chunk_ahead_never_the_whole_file(regressor, tmp_path):
    source = open_source(write_csv(tmp_path / "mols.csv", regressor.data), target_columns=["target"])
    consumed = []

    def counted(rows):
        for row in rows:
            consumed.append(row.row)
            yield row

    source.rows = counted(source.rows)
    stream = iter_predictions(resolve_predictor(regressor.model), source, ScoreOptions(), chunk_size=8, workers=1)
    rows, first = next(stream)
    assert rows == 8 and first.rows == list(range(8))
    assert len(consumed) <= 16 < len(regressor.data)  # this chunk and the one being featurized
    stream.close()


def test_ctrl_c_keeps_the_rows_written_and_resume_finishes_the_same_file(regressor, tmp_path, monkeypatch, capsys):
    path = write_csv(tmp_path / "mols.csv", regressor.data, [("C1CC", "0")])
    assert main(["predict", *keys(regressor, path), f"out={tmp_path / 'whole.csv'}"]) == EXIT_OK
    append, calls = StreamingCsv.append, []

    def interrupted(self, predictions, rows):
        calls.append(rows)
        if len(calls) == 3:
            raise KeyboardInterrupt
        append(self, predictions, rows)

    monkeypatch.setattr(StreamingCsv, "append", interrupted)
    argv = ["predict", *keys(regressor, path), f"out={tmp_path / 'cut.csv'}"]
    capsys.readouterr()
    assert main(argv) == EXIT_INTERRUPTED
    err = capsys.readouterr().err
    assert "interrupted after 8 row(s) read; the run so far is kept in" in err and "cut.csv.partial" in err
    assert "resume=true" in err and not (tmp_path / "cut.csv").exists()
    monkeypatch.setattr(StreamingCsv, "append", append)
    assert main([*argv, "resume=true"]) == EXIT_OK
    assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert (tmp_path / "cut.failed.csv").read_bytes() == (tmp_path / "whole.failed.csv").read_bytes()
    assert not (tmp_path / "cut.csv.partial").exists() and not (tmp_path / "cut.csv.partial.json").exists()


def test_a_run_killed_with_sigkill_resumes_to_the_same_file(regressor, tmp_path, capsys):
    path = write_csv(tmp_path / "mols.csv", regressor.data, [("C1CC", "0")])
    assert main(["predict", *keys(regressor, path), f"out={tmp_path / 'whole.csv'}"]) == EXIT_OK
    out = tmp_path / "cut.csv"
    state = tmp_path / "cut.csv.partial.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-m", "geoadapt", "predict", *keys(regressor, path), f"out={out}"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (state.is_file() and json.loads(state.read_text())["rows"] >= 4) and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    kept, rows = kept_predictions({"out": str(out)})
    assert kept.name == "cut.csv.partial" and 4 <= rows < len(regressor.data) and not out.exists()
    with kept.open("ab") as handle:
        handle.write(b"17,m17,CC(O")  # a chunk half written when the kill came: resume cuts it
    changed = ["predict", *keys(regressor, path), f"out={out}", "resume=true", "samples=2"]
    assert main(changed) == EXIT_BAD_INPUT and "other values of ['samples']" in capsys.readouterr().err
    assert main(["predict", *keys(regressor, path), f"out={out}", "resume=true"]) == EXIT_OK
    assert out.read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_progress_says_one_line_per_chunk_with_the_rate(regressor, tmp_path, capsys):
    path = write_csv(tmp_path / "mols.csv", regressor.data)
    predict_to_csv(regressor.model, path, tmp_path / "p.csv", chunk_size=16, workers=1, progress=True)
    lines = capsys.readouterr().err.strip().splitlines()
    assert [line.split(" rows read")[0] for line in lines] == ["predict: 16", "predict: 32", "predict: 40"]
    assert all(line.endswith("molecules/s") and "(16 predicted, 0 failed)" in lines[0] for line in lines)


def test_only_files_predict_wrote_are_replaced(regressor, tmp_path, capsys):
    path = write_csv(tmp_path / "mols.csv", regressor.data)
    (tmp_path / "mine.csv").write_text("a,b\n1,2\n")
    argv = ["predict", f"checkpoint={regressor.path}", f"data={path}", f"out={tmp_path / 'mine.csv'}", "overwrite=true"]
    assert main(argv) == EXIT_BAD_INPUT
    assert "expected a file geoadapt predict wrote" in capsys.readouterr().err
    assert (tmp_path / "mine.csv").read_text() == "a,b\n1,2\n"
    with pytest.raises(ValueError, match="out: expected a .csv file"):
        predict_to_csv(regressor.model, path, tmp_path / "p.txt")


def test_a_refused_input_leaves_no_files_behind(regressor, tmp_path, capsys):
    (tmp_path / "nosmiles.csv").write_text("name,value\na,1\n")
    (tmp_path / "empty.csv").write_text("")
    for data in ("nosmiles.csv", "empty.csv", "missing.csv"):
        argv = ["predict", f"checkpoint={regressor.path}", f"data={tmp_path / data}", f"out={tmp_path / 'p.csv'}"]
        assert main([*argv, "workers=1", "progress=false"]) == EXIT_BAD_INPUT
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "Traceback" not in err[0], err
        assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv", "nosmiles.csv"], data
    argv = ["predict", f"checkpoint={regressor.path}", f"data={tmp_path / 'empty.csv'}", "out=no/such/folder/p.csv"]
    assert main(argv) == EXIT_BAD_INPUT
    assert "out: expected a file in a folder that exists, got 'no/such/folder/p.csv'" in capsys.readouterr().err
