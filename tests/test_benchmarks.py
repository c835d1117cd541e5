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
        "e3nn_speed",
        "predict_throughput",
        "promise_classification",
        "constraint_bounds",
    ],
)
def test_quick_run(script, tmp_path, capsys):
    payload = _load(script).main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / f"{script}.json").read_text())
    assert saved["rows"] == payload["rows"] and len(payload["rows"]) >= 1
    assert all(_finite(row) for row in payload["rows"])
    printed = capsys.readouterr().out
    assert printed.count("\n|") >= len(payload["rows"]) + 1  # header, rule and one line per row


def test_classifier_trace_quick_run(tmp_path, capsys):
    payload = _load("classifier_trace").main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "classifier_trace.json").read_text())
    assert saved["runs"] == payload["runs"] and set(payload["runs"]) == {"plain", "regularizer"}
    rows = payload["runs"]["regularizer"]
    assert len(rows) == 2 and all(r["weight"] > 0 and 0.5 <= r["share"] <= 1 for r in rows)
    assert all(_finite({k: v for k, v in r.items() if v is not None}) for r in rows)


def test_molecular_adaptation_quick_run(tmp_path, capsys):
    script = _load("molecular_adaptation")
    options = ["--regularizer-options", '{"batch_fraction": 1.0, "every": 1}']
    script.main(["--quick", "--out", str(tmp_path), *options])
    saved = json.loads((tmp_path / "molecular_adaptation_rdkit_chembl2321810.json").read_text())
    assert saved["machine"]["cores"] >= 1 and set(saved["backbones"]) == {"pretrained", "scratch"}
    assert saved["regularizer_options"] == {"batch_fraction": 1.0, "every": 1}
    assert (
        'regularizer options: {"batch_fraction": 1.0, "every": 1}'
        in (tmp_path / "molecular_adaptation_rdkit_chembl2321810.md").read_text()
    )
    for result in saved["backbones"].values():
        assert set(result["summary"]) == {"finetune", "regularizer", "constrained"}
        assert len(result["runs"]) == 2 * 3 and set(result["checks"]) == {"regularizer", "constrained"}
        assert all(
            math.isfinite(v[0]) for s in result["summary"].values() for k, v in s.items() if k != "constraint_met"
        )
    printed = capsys.readouterr().out
    assert printed.count("#### rdkit_chembl2321810") == 2 and "error cut" in printed
    script.main(["--report", "--out", str(tmp_path)])
    checks = [result["checks"]["regularizer"] for result in saved["backbones"].values()]
    expected = sum(c["error_cut"] >= 10 and c["within_one_std_or_better"] for c in checks)
    counted = [line for line in capsys.readouterr().out.splitlines() if line.startswith("regularizer: a 10x cut")]
    assert counted == [f"regularizer: a 10x cut within one std on {expected} of 2 target/backbone pairs"]


def test_molecular_adaptation_refuses_options_that_are_not_a_json_object(capsys):
    with pytest.raises(SystemExit):
        _load("molecular_adaptation").main(["--regularizer-options", "[1]"])
    assert "--regularizer-options: expected a JSON object, got '[1]'" in capsys.readouterr().err


def test_e3nn_speed_quick_run_times_both_products_and_writes_its_table(tmp_path, capsys):
    payload = _load("e3nn_speed").main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "e3nn_speed.json").read_text())
    assert [row["tensor_product"] for row in saved["rows"]] == ["fully_connected", "channelwise"]
    assert saved["rows"][0]["speedup"] == {"median": 1.0, "min": 1.0, "max": 1.0}  # the reference against itself
    assert all(math.isfinite(row["test_rmse"]) and row["fwd_bwd_s_per_1000"]["median"] > 0 for row in saved["rows"])
    assert set(saved["accuracy"]) == {row["model"] for row in saved["rows"]}
    assert {"cores", "threads", "torch", "device"} <= set(saved["machine"])
    assert len(payload["per_atom"]) == 3 and any("SevenNet-0 not timed" in note for note in saved["notes"])
    markdown = (tmp_path / "e3nn_speed.md").read_text()
    assert markdown.count("\n|") >= 2 + 2 + 2 + 3 and markdown in capsys.readouterr().out


@pytest.mark.slow
def test_e3nn_speed_quick_run_times_sevennet_beside(tmp_path):
    pytest.importorskip("sevenn")
    payload = _load("e3nn_speed").main(["--quick", "--sevennet", "--out", str(tmp_path)])
    (sevennet,) = [row for row in payload["per_atom"] if row["model"].startswith("SevenNet-0")]
    assert sevennet["atoms"] > 0 and sevennet["us_per_atom"]["median"] > 0


def test_demo_report(capsys):
    from geoadapt.demo import main

    main(["molecules", "--report", "--molecules", "6", "--samples", "2"])
    out = capsys.readouterr().out
    assert "e3nn_gnn" in out and "naive_gnn" in out and "Permutation" in out
    with pytest.raises(SystemExit):
        main(["--report"])  # the report belongs to the molecular story


def test_demo_story_quick_writes_outside_the_tracked_files(tmp_path, capsys, monkeypatch):
    import subprocess

    from geoadapt.demo import main

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    main(["molecules", "--quick"])  # the default output folder, relative to where it runs
    out_dir = tmp_path / "runs" / "demo-molecules"
    out = capsys.readouterr().out
    summary = json.loads((out_dir / "summary.json").read_text())
    assert [m["method"] for m in summary["methods"]] == ["finetune", "regularizer", "constrained"]
    assert all(_finite(m["metrics"]) for m in summary["methods"])
    assert all({"rmse", "moved_rmse"} <= set(m["metrics"]) for m in summary["methods"]) and "| RMSE moved |" in out
    assert (out_dir / "equivariance_error.png").is_file() and (out_dir / "error_vs_angle.png").is_file()
    assert out.count("\n|") == 2 + len(summary["methods"])  # header, rule, one row per method
    ignored = subprocess.run(["git", "check-ignore", "-q", "runs/demo-molecules/summary.json"], cwd=repo)
    assert ignored.returncode == 0  # in the repository, git ignores what the demo writes


@pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")
def test_potential_demo_quick_tells_the_whole_story(tmp_path, capsys, monkeypatch):
    from geoadapt.demo import main

    monkeypatch.chdir(tmp_path)
    main(["--quick"])  # make demo's story, small
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "runs" / "demo" / "summary.json").read_text())
    assert summary["symmetry_float64"]["SE3"] < 1e-12 < 1e-6 < summary["symmetry_float64"]["O3"]
    zero, lora = (r["metrics"] for r in summary["rows"])
    assert zero["forgetting_force_mae"] < 1e-3 < lora["forgetting_force_mae"]  # the source against its own labels
    assert all(_finite(r["metrics"]) for r in summary["rows"]) and 0 < summary["rows"][1]["trainable_share"] < 0.03
    assert summary["md"]["drift_ev_per_atom"] < 1e-4 and summary["steps"] >= 1
    assert [line[:2] for line in out.splitlines() if line[:1].isdigit()] == ["1.", "2.", "3.", "4.", "5."]
    assert out.count("\n|") == 2 + 2  # header, rule, the zero-shot row and the adapted one


@pytest.mark.skipif(importlib.util.find_spec("sevenn") is None, reason="optional extra sevennet")
def test_potential_adaptation_quick_run(tmp_path, capsys):
    payload = _load("potential_adaptation").main(["--quick", "--out", str(tmp_path)])
    saved = json.loads((tmp_path / "potential_adaptation.json").read_text())
    assert saved["rows"] == payload["rows"] and saved["machine"]["cores"] >= 1
    methods = ["zero_shot", "finetune", "freeze", "lora", "lora_replay", "finetune_replay", "parity"]
    assert [r["method"] for r in payload["rows"]] == methods and all(_finite(r) for r in payload["rows"])
    rows = {r["method"]: r for r in payload["rows"]}
    assert rows["zero_shot"]["forgetting_force_mae"] < 1e-3 < rows["finetune"]["forgetting_force_mae"]
    assert rows["parity"]["o3_error"] < 1e-4 < rows["zero_shot"]["o3_error"]  # mirror symmetry restored
    assert 0 < rows["lora"]["trainable_share"] <= 0.03 and rows["finetune"]["trainable_share"] == 1.0
    assert all(rows[m]["cpu_s_per_step"] > 0 for m in methods[1:]) and set(payload["checks"]) == {
        "lora_within_10pct_of_finetune_force_mae_with_at_most_3pct_weights",
        "lora_replay_cuts_forgetting_3x_at_most_10pct_extra_target_error",
        "finetune_replay_cuts_forgetting_3x_at_most_10pct_extra_target_error",
    }
    assert (tmp_path / "potential_adaptation.md").read_text().count("\n|") >= 8
    absent, present = _potential_page(tmp_path / "results"), _potential_page(tmp_path / "results", tmp_path)
    assert "`results/potential_adaptation.json` is absent" in absent
    assert "is absent" not in present and "## Targets" in present and present.count("\n| LoRA") >= 2


def _potential_page(results: Path, run: Path | None = None) -> str:
    """The SevenNet-0 on EMT page rendered from a copy of the repository's results, with ``run``'s JSON or none."""
    import shutil
    import sys

    docs = Path(__file__).resolve().parents[1] / "docs"
    sys.path.insert(0, str(docs))
    import gen_results

    shutil.rmtree(results, ignore_errors=True)  # a folder of this test's tmp_path
    shutil.copytree(docs.parent / "results", results)
    (results / "potential_adaptation.json").unlink(missing_ok=True)
    if run is not None:
        shutil.copy(run / "potential_adaptation.json", results)
    try:
        return gen_results.render(results)["results/potential-adaptation.md"]
    finally:
        gen_results.render()  # the repository's results again, for pages rendered after this test


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


def test_molecular_adaptation_merge_replaces_only_the_rerun_methods(tmp_path):
    script = _load("molecular_adaptation")
    old = [{"method": m, "seed": s, "value": "old"} for s in (0, 1) for m in ("finetune", "augment", "regularizer")]
    saved = {"backbones": {"scratch": {"runs": old}}}
    (tmp_path / "molecular_adaptation_esol.json").write_text(json.dumps(saved))
    new = [{"method": "regularizer", "seed": s, "value": "new"} for s in (0, 1)]
    runs = script.merged(tmp_path, "esol", "scratch", new, ["regularizer"])
    assert [(r["method"], r["seed"], r["value"]) for r in runs] == [
        ("finetune", 0, "old"), ("augment", 0, "old"), ("regularizer", 0, "new"),
        ("finetune", 1, "old"), ("augment", 1, "old"), ("regularizer", 1, "new"),
    ]  # fmt: skip
    with pytest.raises(SystemExit, match="--merge: expected"):
        script.merged(tmp_path, "lipophilicity", "scratch", new, ["regularizer"])
