"""The geoadapt command line, driven as a user would."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from geoadapt.cli import main


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_help_for_every_command():
    proc = subprocess.run([sys.executable, "-m", "geoadapt.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "pretrain" in proc.stdout and "evaluate" in proc.stdout
    for command in ("pretrain", "adapt", "evaluate", "report", "bench", "datasets"):
        with pytest.raises(SystemExit) as info:
            main([command, "--help"])
        assert info.value.code == 0


def test_datasets_lists_cards(capsys):
    code, out, _ = run(capsys, "datasets")
    assert code == 0 and "mutag" in out and "rdkit_nci5k" in out and "| yes" in out


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs") / "pre"
    code = main(
        [
            "pretrain",
            "model=naive_gnn",
            "data=rdkit_nci5k",
            f"out={folder}",
            "limit=80",
            "epochs=2",
            "augment=so3",
            "progress=false",
        ]
    )
    assert code == 0
    return folder


def test_pretrain_adapt_evaluate_report(pretrained, tmp_path, capsys):
    for name in (
        "config.yaml",
        "metrics.csv",
        "summary.json",
        "model.pt",
        "loss.png",
        "equivariance_error.png",
        "error_vs_angle.png",
        "history.json",
    ):
        assert (pretrained / name).is_file(), name
    assert not pretrained.with_name("pre.partial").exists()
    config = tmp_path / "adapt.yaml"
    config.write_text(
        f"checkpoint: {pretrained / 'model.pt'}\ndata: rdkit_chembl2321810\nout: {tmp_path / 'ad'}\n"
        "limit: 80\nepochs: 2\nregularizers: [so3]\nconstrained: {epsilon: 0.001, dual_lr: 5.0}\n"
        "progress: false\n"
    )
    code, out, _ = run(capsys, "adapt", "--config", str(config))
    assert code == 0 and "head policy: REUSE" in out
    summary = json.loads((tmp_path / "ad" / "summary.json").read_text())
    assert summary["command"] == "adapt" and "val_equivariance_error" in summary
    assert any(k.endswith("/multiplier") for k in summary)
    code, out, _ = run(
        capsys,
        "evaluate",
        "--checkpoint",
        str(tmp_path / "ad" / "model.pt"),
        "--data",
        "rdkit_chembl2321810",
        "--groups",
        "so3,perm",
        "limit=80",
    )
    assert code == 0 and "SO3" in out and "Permutation" in out and "Per layer" in out
    code, out, _ = run(
        capsys,
        "evaluate",
        "--checkpoint",
        str(tmp_path / "ad" / "model.pt"),
        "--data",
        "rdkit_chembl2321810",
        "--json",
        "limit=80",
    )
    card = json.loads(out)
    assert code == 0 and {g["group"] for g in card["groups"]} == {"SO3", "Permutation()"}
    code, out, _ = run(capsys, "report", str(pretrained), str(tmp_path / "ad"))
    assert code == 0 and out.count("\n|") >= 3 and "adapt" in out and "pretrain" in out


@pytest.mark.parametrize(
    "argv,message",
    [
        (["pretrain", "data=rdkit_nci5k", "out=OUT"], "missing required key 'model'"),
        (["pretrain", "model=gin", "data=nope", "out=OUT"], "dataset name: expected one of"),
        (["pretrain", "model=gin", "data=rdkit_nci5k", "out=OUT", "epochs=abc"], "override epochs=abc: expected int"),
        (["adapt", "checkpoint=missing.pt", "data=rdkit_nci5k", "out=OUT"], "'missing.pt' not found"),
        (["pretrain", "model=gin", "data=rdkit_nci5k", "out=OUT", "colour=red"], "unknown key 'colour'"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_run_folder(argv, message, tmp_path, capsys):
    out_dir = tmp_path / "run"
    argv = [a.replace("OUT", str(out_dir)) for a in argv]
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out_dir.exists() and not out_dir.with_name("run.partial").exists()
