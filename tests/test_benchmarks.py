"""Each benchmark script runs end to end in --quick mode; its table has the right shape, numbers are finite."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _finite(value) -> bool:
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    return True


@pytest.mark.parametrize(
    "script",
    [
        "equivariance_eval",
        "regularizer_overhead",
        "backbones",
        "image_adaptation",
        "classification_adaptation",
        "graph_classification",
    ],
)
def test_quick_run(script, tmp_path, capsys):
    payload = _load(script).main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / f"{script}.json").read_text())
    assert saved["rows"] == payload["rows"] and len(payload["rows"]) >= 1
    assert all(_finite(row) for row in payload["rows"])
    printed = capsys.readouterr().out
    assert printed.count("\n|") >= len(payload["rows"]) + 1  # header, rule and one line per row


def test_molecular_adaptation_quick_run(tmp_path, capsys):
    _load("molecular_adaptation").main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "molecular_adaptation_rdkit_chembl2321810.json").read_text())
    assert saved["machine"]["cores"] >= 1 and set(saved["backbones"]) == {"pretrained", "scratch"}
    for result in saved["backbones"].values():
        assert set(result["summary"]) == {"finetune", "regularizer", "constrained"}
        assert len(result["runs"]) == 2 * 3 and set(result["checks"]) == {"regularizer", "constrained"}
        assert all(
            math.isfinite(v[0]) for s in result["summary"].values() for k, v in s.items() if k != "constraint_met"
        )
    printed = capsys.readouterr().out
    assert printed.count("#### rdkit_chembl2321810") == 2 and "error cut" in printed


def test_demo_report(capsys):
    from geoadapt.demo import main

    main(["--report", "--molecules", "6", "--samples", "2"])
    out = capsys.readouterr().out
    assert "e3nn_gnn" in out and "naive_gnn" in out and "Permutation" in out


def test_demo_story_quick_writes_outside_the_tracked_files(tmp_path, capsys, monkeypatch):
    import subprocess

    from geoadapt.demo import main

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    main(["--quick"])  # the default output folder, relative to where it runs
    out_dir = tmp_path / "runs" / "demo"
    out = capsys.readouterr().out
    summary = json.loads((out_dir / "summary.json").read_text())
    assert [m["method"] for m in summary["methods"]] == ["finetune", "augment", "regularizer", "constrained"]
    assert all(_finite(m["metrics"]) for m in summary["methods"])
    assert (out_dir / "equivariance_error.png").is_file() and (out_dir / "error_vs_angle.png").is_file()
    assert out.count("\n|") >= 6
    ignored = subprocess.run(["git", "check-ignore", "-q", "runs/demo/summary.json"], cwd=repo)
    assert ignored.returncode == 0  # in the repository, git ignores what the demo writes


@pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")
def test_foundation_adaptation_quick_run(tmp_path, capsys):
    payload = _load("foundation_adaptation").main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "foundation_adaptation.json").read_text())
    assert saved["machine"]["cores"] >= 1 and saved["rows"] == payload["rows"]
    assert [r["method"] for r in payload["rows"]] == ["zero_shot", "finetune", "readout", "lora", "lora_o3", "parity"]
    assert all(_finite(row) for row in payload["rows"])
    rows = {r["method"]: r for r in payload["rows"]}
    assert rows["parity"]["o3_error"] < 1e-4 < rows["zero_shot"]["o3_error"]  # mirror symmetry restored
    assert 0 < rows["lora"]["trainable"] < 0.03 * rows["finetune"]["trainable"]
    assert set(saved["datasets"]["md17_ethanol"]["checks"]) == {
        "lora_within_10pct_of_finetune_with_under_3pct_params",
        "o3_regularizer_cuts_reflection_error_10x_at_finetune_rmse",
        "parity_average_exact",
    }
    assert (tmp_path / "foundation_adaptation.md").read_text().count("\n|") >= 7
    assert "parity_average_exact" in capsys.readouterr().out
