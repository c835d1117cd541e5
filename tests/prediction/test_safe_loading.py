"""The attacks of ``tests/test_safe_loading.py`` through ``geoadapt.predict`` and ``geoadapt predict``: a checkpoint
with a ``__reduce__`` payload, one naming ``subprocess:Popen`` as its class, a poisoned resume state and a poisoned
data cache are refused in one line, and the marker file their payload would create never exists."""

from __future__ import annotations

import json

import pytest
import torch

import geoadapt
from geoadapt.cli import EXIT_BAD_INPUT, main
from geoadapt.serialization import UnsafeFileError
from tests.prediction.conftest import write_csv
from tests.test_safe_loading import Payload, code_checkpoint, genuine, one_line, poisoned_checkpoint  # noqa: F401

DATA = "rdkit_chembl2321810"


def test_predict_refuses_a_reduce_payload(genuine, tmp_path, capsys):  # noqa: F811
    marker = tmp_path / "pwned"
    path = poisoned_checkpoint(genuine, tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeFileError, match=r"evil.pt: refused: it holds a Python object \(posix.system\)"):
        geoadapt.predict(path, ["CCO"])
    argv = ["predict", f"checkpoint={path}", f"data={DATA}", "limit=5", f"out={tmp_path / 'p.csv'}"]
    assert main(argv) == EXIT_BAD_INPUT
    assert "refused: it holds a Python object (posix.system)" in one_line(capsys.readouterr().err)
    assert not marker.exists() and not (tmp_path / "p.csv").exists()


def test_predict_runs_a_class_path_only_when_trusted(genuine, tmp_path, capsys):  # noqa: F811
    marker = tmp_path / "pwned"
    path = code_checkpoint(genuine, tmp_path / "popen.pt", marker)
    with pytest.raises(ValueError, match=r"asks to import and call 'subprocess:Popen'.*trust_code=True"):
        geoadapt.predict(path, ["CCO"])
    argv = ["predict", f"checkpoint={path}", f"data={DATA}", "limit=5", f"out={tmp_path / 'p.csv'}"]
    assert main(argv) == EXIT_BAD_INPUT
    assert "subprocess:Popen" in one_line(capsys.readouterr().err)
    with pytest.raises(TypeError, match="expected a torch.nn.Module subclass at 'subprocess:Popen'"):
        geoadapt.predict(path, ["CCO"], trust_code=True)
    assert main([*argv, "trust_code=true"]) == EXIT_BAD_INPUT
    assert "torch.nn.Module subclass" in one_line(capsys.readouterr().err)
    assert not marker.exists()


def test_a_resume_refuses_a_poisoned_or_tampered_state(regressor, tmp_path, capsys):
    path = write_csv(tmp_path / "mols.csv", regressor.data)
    out = tmp_path / "p.csv"
    argv = ["predict", f"checkpoint={regressor.path}", f"data={path}", f"out={out}", "chunk_size=8", "progress=false"]
    assert main([*argv, "limit=8", "workers=1"]) == 0
    (tmp_path / "p.csv.partial").write_bytes(out.read_bytes())  # an interrupted run: its partial file and state
    state = tmp_path / "p.csv.partial.json"
    marker = tmp_path / "pwned"
    torch.save({"rows": 8, "sizes": {"predictions": Payload(marker)}}, state)  # a pickle where JSON belongs
    assert main([*argv, "limit=8", "workers=1", "resume=true", "overwrite=true"]) == EXIT_BAD_INPUT
    assert "resume state" in one_line(capsys.readouterr().err) and not marker.exists()
    size = (tmp_path / "p.csv.partial").stat().st_size
    state.write_text(json.dumps({"settings": {}, "rows": 8, "sizes": {"predictions": size + 10**6, "failed": 0}}))
    assert main([*argv, "limit=8", "workers=1", "resume=true", "overwrite=true"]) == EXIT_BAD_INPUT
    assert f"between 0 and that of {tmp_path / 'p.csv.partial'} ({size})" in one_line(capsys.readouterr().err)
    assert (tmp_path / "p.csv.partial").stat().st_size == size  # nothing was cut or grown


def test_predict_refuses_a_poisoned_data_cache(regressor, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GEOADAPT_CACHE", str(tmp_path / "cache"))
    model = regressor.path
    assert len(geoadapt.predict(model, DATA, split="val", limit=20)) > 0  # writes the cache of the split
    (cached,) = (tmp_path / "cache").rglob("*.pt")
    marker = tmp_path / "pwned"
    torch.save({"graphs": [Payload(marker)]}, cached)
    with pytest.raises(UnsafeFileError, match="cache file .*: refused"):
        geoadapt.predict(model, DATA, split="val", limit=20)
    argv = ["predict", f"checkpoint={model}", f"data={DATA}", "split=val", "limit=20", f"out={tmp_path / 'p.csv'}"]
    assert main(argv) == EXIT_BAD_INPUT
    assert "refused" in one_line(capsys.readouterr().err)
    assert not marker.exists()
