"""Files that try to run code when opened are refused in one line, and their payload never runs.

Each attack writes a file whose payload would create a marker file; every way geoadapt opens such a file
(``load``, ``evaluate``, ``adapt checkpoint=``, ``resume=true``, the Trainer's resume, the data caches) must refuse
it, and the marker must not exist afterwards.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Data

from geoadapt import checkpoints
from geoadapt.adapt import make_strategy
from geoadapt.checkpoints import load, save
from geoadapt.cli import main
from geoadapt.data.cache import load_graphs, save_graphs, stage_raw
from geoadapt.groups import E3, ProductGroup, SignFlip, Translation
from geoadapt.groups.records import group_from_record, group_to_record, register_group
from geoadapt.models import build
from geoadapt.serialization import UnsafeFileError, atomic_save, safe_load
from geoadapt.train import Trainer, resume

REPO = Path(__file__).resolve().parents[1]


class Payload:
    """Pickles to a call of ``os.system`` that creates ``marker``: what a crafted file carries."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def genuine(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "gin.pt"
    return save(build("naive_gnn", hidden=8, num_layers=1), path)


def poisoned_checkpoint(genuine: Path, path: Path, marker: Path) -> Path:
    """A real checkpoint with one extra entry that runs ``touch marker`` when unpickled."""
    payload = torch.load(genuine, weights_only=True)
    payload["extra"] = {"note": Payload(marker)}
    torch.save(payload, path)
    return path


def test_the_payload_is_real(genuine, tmp_path):
    # The attack works on a plain unpickling: the refusals below are not vacuous.
    marker = tmp_path / "pwned"
    torch.load(poisoned_checkpoint(genuine, tmp_path / "evil.pt", marker), weights_only=False)
    assert marker.exists()


def test_load_refuses_a_reduce_payload(genuine, tmp_path):
    marker = tmp_path / "pwned"
    path = poisoned_checkpoint(genuine, tmp_path / "evil.pt", marker)
    with pytest.raises(UnsafeFileError, match=r"evil.pt: refused: it holds a Python object \(posix.system\)"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize("command", ["evaluate", "adapt"])
def test_the_cli_refuses_a_reduce_payload(genuine, tmp_path, capsys, command):
    marker = tmp_path / "pwned"
    path = poisoned_checkpoint(genuine, tmp_path / "evil.pt", marker)
    argv = [command, f"checkpoint={path}", "data=rdkit_chembl2321810", "limit=20"]
    if command == "adapt":
        argv += [f"out={tmp_path / 'run'}", "epochs=1", "progress=false"]
    assert main(argv) == 2
    line = one_line(capsys.readouterr().err)
    assert "refused: it holds a Python object (posix.system)" in line and "convert-checkpoint" in line
    assert not marker.exists()


def code_checkpoint(genuine: Path, path: Path, marker: Path) -> Path:
    """Plain data only, but naming ``subprocess:Popen`` as the class that rebuilds the model."""
    payload = torch.load(genuine, weights_only=True)
    payload.update(arch="custom", config={"class": "subprocess:Popen", "init": {"args": ["touch", str(marker)]}})
    torch.save(payload, path)
    return path


def test_a_class_path_runs_only_when_trusted(genuine, tmp_path, capsys):
    marker = tmp_path / "pwned"
    path = code_checkpoint(genuine, tmp_path / "popen.pt", marker)
    with pytest.raises(ValueError, match=r"asks to import and call 'subprocess:Popen'.*trust_code=True"):
        load(path)
    assert main(["evaluate", f"checkpoint={path}", "data=rdkit_chembl2321810", "limit=20"]) == 2
    assert "subprocess:Popen" in one_line(capsys.readouterr().err)
    assert not marker.exists()
    # Even trusted, only an nn.Module subclass is ever called.
    with pytest.raises(TypeError, match="expected a torch.nn.Module subclass at 'subprocess:Popen'"):
        load(path, trust_code=True)
    assert not marker.exists()


def interrupted_run(tmp_path: Path, genuine: Path) -> list[str]:
    """A CLI adapt run stopped after its first epoch: a partial folder with ``last.pt``."""
    argv = [
        "adapt",
        f"checkpoint={genuine}",
        "data=rdkit_chembl2321810",
        "limit=40",
        "epochs=3",
        "batch_size=16",
        "progress=false",
        f"out={tmp_path / 'run'}",
    ]
    calls = []

    def stop_after_first(trainer, name):
        calls.append(name)
        atomic_save(trainer.state(), trainer.run_dir / name)
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(resume, "save_state", stop_after_first)
        assert main(argv) == 130
    assert (tmp_path / "run.partial" / "last.pt").is_file()
    return argv


def test_resume_refuses_a_poisoned_last_pt(genuine, tmp_path, capsys):
    argv = interrupted_run(tmp_path, genuine)
    last = tmp_path / "run.partial" / "last.pt"
    marker = tmp_path / "pwned"
    state = torch.load(last, weights_only=True)
    state["history"] = [Payload(marker)]
    torch.save(state, last)
    capsys.readouterr()
    assert main([*argv, "resume=true"]) == 2
    assert "resume state" in one_line(capsys.readouterr().err)
    assert not marker.exists()


def test_the_trainer_refuses_a_poisoned_last_pt(molecules, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"epoch": 1, "model": Payload(marker)}, tmp_path / "last.pt")
    model = build("naive_gnn", hidden=8, num_layers=1)
    trainer = Trainer(model, max_epochs=2, run_dir=tmp_path, resume=True, groups=[], progress=False)
    molecules.y = torch.zeros(molecules.num_graphs, 1)
    with pytest.raises(UnsafeFileError, match=r"resume state .*last.pt: refused"):
        trainer.fit([molecules])
    assert not marker.exists()


def test_a_resumed_state_holds_only_plain_data(molecules, tmp_path):
    model = build("naive_gnn", hidden=8, num_layers=1)
    molecules.y = torch.arange(molecules.num_graphs, dtype=torch.float32).unsqueeze(-1)
    Trainer(model, max_epochs=1, run_dir=tmp_path, groups=[], progress=False).fit([molecules])
    state = safe_load(tmp_path / "last.pt", "resume state")  # the restricted unpickler reads it whole
    assert state["epoch"] == 1 and isinstance(state["rng"]["numpy"], list)


def test_poisoned_caches_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    good = tmp_path / "good.pt"
    save_graphs(good, [Data(x=torch.ones(2, 1), smiles="CC")], failures=[(3, "C(")])
    back = load_graphs(good)
    assert back["graphs"][0].smiles == "CC" and back["failures"] == [(3, "C(")]
    torch.save({"graphs": [Payload(marker)]}, tmp_path / "cache.pt")
    with pytest.raises(UnsafeFileError, match="cache file .*cache.pt: refused"):
        load_graphs(tmp_path / "cache.pt")
    # PyG retries a processed file that fails weights_only loading *without* it: geoadapt reads it safely first.
    source = tmp_path / "raw_source"
    source.mkdir()
    (source / "a.txt").write_text("raw")
    target = tmp_path / "staged"
    (target / "processed").mkdir(parents=True)
    torch.save(Payload(marker), target / "processed" / "data.pt")
    with pytest.raises(UnsafeFileError, match="processed/data.pt: refused"):
        stage_raw(source, target, ["a.txt"], "toy")
    assert not marker.exists()


def test_a_checkpoint_that_pickled_a_group_converts_only_when_trusted(tmp_path, capsys, molecules):
    torch.manual_seed(0)
    model = build("naive_gnn", hidden=8, num_layers=1)
    group = Translation(scale=2.0)
    adapted = make_strategy("augment", model, model.spec, group).model
    path = save(adapted, tmp_path / "aug.pt")
    # What the previous format wrote: the group object itself, pickled.
    payload = torch.load(path, weights_only=True)
    payload["adaptations"][-1]["group"], payload["format_version"] = group, 2
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(UnsafeFileError, match="convert-checkpoint source=.*old.pt"):
        load(tmp_path / "old.pt")
    assert main(["convert-checkpoint", f"source={tmp_path / 'old.pt'}", f"out={tmp_path / 'new.pt'}"]) == 2
    assert "trust_code: expected true" in one_line(capsys.readouterr().err)
    argv = ["convert-checkpoint", f"source={tmp_path / 'old.pt'}", f"out={tmp_path / 'new.pt'}", "trust_code=true"]
    assert main(argv) == 0
    converted = load(tmp_path / "new.pt")
    assert converted.adaptations[-1]["group"] == {"group": "Translation", "options": {"scale": 2.0}}
    torch.testing.assert_close(converted.eval()(molecules), adapted.eval()(molecules))


def test_groups_are_stored_by_name_and_options():
    for group in (Translation(2.0), E3(scale=0.5), E3(proper=True), SignFlip("pe", 3), ProductGroup(E3(), SignFlip())):
        record = group_to_record(group)
        buffer = io.BytesIO()
        torch.save(record, buffer)
        buffer.seek(0)
        assert repr(group_from_record(torch.load(buffer, weights_only=True))) == repr(group)

    class Mine(Translation):
        pass

    with pytest.raises(ValueError, match="expected a registered group class .*register_group"):
        group_to_record(Mine())
    register_group(Mine)
    assert type(group_from_record(group_to_record(Mine(3.0)))) is Mine
    with pytest.raises(ValueError, match="group record: expected one of .* got 'Nope'"):
        group_from_record({"group": "Nope"})


def test_checkpoints_refuse_objects_when_written(tmp_path):
    with pytest.raises(TypeError, match=r"x.pt\['extra'\]\['when'\]: expected tensors and plain data .* got Payload"):
        save(build("naive_gnn", hidden=8, num_layers=1), tmp_path / "x.pt", extra={"when": Payload(tmp_path)})
    assert not (tmp_path / "x.pt").exists()
    assert checkpoints.FORMAT_VERSION == 4


def test_loading_in_a_fresh_process_runs_nothing(genuine, tmp_path):
    marker = tmp_path / "pwned"
    path = poisoned_checkpoint(genuine, tmp_path / "evil.pt", marker)
    code = f"from geoadapt import load\ntry:\n    load({str(path)!r})\nexcept ValueError as e:\n    print(e)"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert "refused" in out.stdout and not marker.exists()
