"""The geoadapt command line, driven as a user would."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import geoadapt
from geoadapt.cli import main

ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}


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
        "progress: false\ndevice: cpu\nprecision: bf16\n"
    )
    code, out, _ = run(capsys, "adapt", "--config", str(config))
    assert code == 0 and "head policy: REUSE" in out
    summary = json.loads((tmp_path / "ad" / "summary.json").read_text())
    assert summary["command"] == "adapt" and "val_equivariance_error" in summary
    assert "precision: bf16" in (tmp_path / "ad" / "config.yaml").read_text()
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
        "device=cpu",
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
    header, _, pre_row, ad_row = out.strip().splitlines()[:4]
    assert "| data" in header and "| strategy" in header
    assert "rdkit_nci5k" in pre_row and "rdkit_chembl2321810" in ad_row and "finetune" in ad_row


def test_error_vs_angle_is_in_target_units_like_the_headline_error(pretrained, tmp_path, capsys):
    from geoadapt.checkpoints import load as load_model
    from geoadapt.data import load
    from geoadapt.metrics import error_vs_angle
    from geoadapt.models import Predictor
    from geoadapt.structure import concat
    from geoadapt.train.pretrain import loader_for

    out = tmp_path / "ad"
    argv = ["adapt", f"checkpoint={pretrained / 'model.pt'}", "data=rdkit_chembl2321810", f"out={out}"]
    code, _, err = run(capsys, *argv, "limit=80", "epochs=1", "progress=false")
    assert code == 0, err
    reported = json.loads((out / "summary.json").read_text())["error_vs_angle"]
    model = load_model(out / "model.pt").eval()
    assert isinstance(model, Predictor)  # a regressor comes back answering in target units
    sample = concat(list(loader_for(load("rdkit_chembl2321810", split="val", limit=80, progress=False), 256, False)))
    angles = torch.tensor([math.radians(float(a)) for a in reported])
    scale = model.scaler.block_scale(model.spec)
    target_units = error_vs_angle(model, sample, model.spec, angles, scale)
    assert list(reported.values()) == pytest.approx(target_units.tolist(), rel=1e-4)
    # The headline error's definition: the same curve from standardized outputs against a unit scale.
    standardized = error_vs_angle(model.network, sample, model.spec, angles, scale=1.0)
    assert torch.allclose(standardized, target_units, rtol=1e-4)
    assert not torch.allclose(error_vs_angle(model.network, sample, model.spec, angles), target_units, rtol=0.1)


def test_plots_have_whole_epoch_ticks_and_the_run_name():
    from geoadapt.plots import history_figures

    history = [{"epoch": float(e), "train_loss": 1.0 / (e + 1), "val_rmse": 2.0 - e / 10} for e in range(3)]
    figures = history_figures(history, [0.5, 1.0], [0.1, 0.2], title="adapt-esol")
    assert set(figures) == {"loss.png", "metrics.png", "error_vs_angle.png"}
    for name, fig in figures.items():
        ax = fig.axes[0]
        assert ax.get_title().startswith("adapt-esol"), name
        if name != "error_vs_angle.png":
            ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
            assert ticks and all(float(t).is_integer() for t in ticks), (name, ticks)


def test_version_and_python_dash_m():
    version = subprocess.run([sys.executable, "-m", "geoadapt", "--version"], capture_output=True, text=True, env=ENV)
    assert version.returncode == 0 and version.stdout.strip() == f"geoadapt {geoadapt.__version__}", version.stderr


def test_your_own_csv_with_dropped_rows_reported_and_recorded(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GEOADAPT_CACHE", str(tmp_path / "cache"))
    source = Path(os.environ["GEOADAPT_DATA"]) / "MoleculeNet" / "esol" / "raw" / "delaney-processed.csv"
    lines = source.read_text().splitlines()[:41]
    rows = [line.split(",") for line in lines]
    smiles, target = rows[0].index("smiles"), rows[0].index("measured log solubility in mols per litre")
    rows[3][smiles] = "C1CC"  # data row 2: unparsable
    rows[6][target] = ""  # data row 5: no target
    rows[9][target] = "NaN"  # data row 8
    path = tmp_path / "mols.csv"
    path.write_text("\n".join(",".join(r) for r in rows) + "\n")
    argv = ["pretrain", "model=naive_gnn", f"data={path}", "smiles_column=smiles", "task=regression"]
    argv += ["target_columns=[measured log solubility in mols per litre]", f"out={tmp_path / 'run'}"]
    code, out, err = run(capsys, *argv, "epochs=1", "progress=false")
    assert code == 0, err
    assert "mols: dropped 3 of 40 rows: 2 NaN or empty targets (rows 5, 8); 1 unparsable SMILES (row 2)" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["dropped"] == {
        "nan_target": 2,
        "parse": 1,
        "embed": 0,
        "first_rows": {"nan_target": [5, 8], "parse": [2]},
    }
    assert summary["data"] == str(path) and summary["val_rmse"] > 0
    code, _, err = run(capsys, "pretrain", "model=naive_gnn", f"data={path}", f"out={tmp_path / 'r2'}")
    assert code == 2 and "target_columns: expected the target column(s)" in err and "'smiles'" in err


def test_gin_on_mutag_reads_its_input_sizes_from_the_data(tmp_path, capsys):
    # Two logits, as in the graph-classification setup: ROC-AUC comes from the positive-class probability.
    argv = ["pretrain", "model=gin", "data=mutag", f"out={tmp_path / 'gin'}", "model_config={out_dim: 2}"]
    code, out, err = run(capsys, *argv, "epochs=1", "progress=false")
    assert code == 0, err
    assert "model_config from the data: in_dim=7" in out
    summary = json.loads((tmp_path / "gin" / "summary.json").read_text())
    assert 0.0 <= summary["val_roc_auc"] <= 1.0


@pytest.fixture(scope="module")
def image_checkpoint(tmp_path_factory) -> Path:
    from geoadapt.checkpoints import save
    from geoadapt.models import build

    return save(build("cnn"), tmp_path_factory.mktemp("cnn") / "cnn.pt", dataset="digits")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad")
    (folder / "broken.yaml").write_text("model: gin\ndata: [mutag\n")
    (folder / "empty.csv").write_text("")
    (folder / "header.csv").write_text("smiles,y\n")
    return folder


@pytest.mark.parametrize("epsilon,met", [(1e-9, False), (10.0, True)])
def test_adapt_says_whether_the_constraint_holds(pretrained, tmp_path, capsys, epsilon, met):
    out_dir = tmp_path / "ad"
    code, out, _ = run(
        capsys, "adapt", f"checkpoint={pretrained / 'model.pt'}", "data=rdkit_chembl2321810", f"out={out_dir}",
        "limit=60", "epochs=1", "regularizers=[so3]", f"constrained={{epsilon: {epsilon}}}", "progress=false",
    )  # fmt: skip
    summary = json.loads((out_dir / "summary.json").read_text())
    (report,) = summary["constraints"]
    assert code == 0 and report["met"] is met and report["epsilon"] == epsilon
    last = out.strip().splitlines()[-1]
    if met:
        assert "E[R] <= 10 met (measured" in last and not summary["warnings"]
    else:
        assert f"E[R] <= 1e-09 NOT met: measured {report['measured']:.3g}" in last
        assert report["miss"] > 0 and summary["warnings"][0] in last  # one wording: the warning is the last line's


@pytest.mark.parametrize(
    "argv,message",
    [
        (
            ["pretrain", "--config", "BAD/broken.yaml", "out=OUT"],
            "broken.yaml: expected YAML, got a syntax error",
        ),
        (["pretrain", "model=gin", "data=rdkit_nci5k", "out=OUT", "epochs=0"], "epochs: expected a whole number >= 1"),
        (["pretrain", "model=gin", "data=rdkit_nci5k", "out=OUT", "epochs=-1"], "epochs: expected a whole number >= 1"),
        (["pretrain", "model=gin", "data=rdkit_nci5k", "out=OUT", "limit=0"], "limit: expected a whole number >= 1"),
        (["pretrain", "model=gin", "data=mutag", "out=OUT", "limit=10"], "limit: only molecule sets take a limit"),
        (["pretrain", "model=gin", "data=rdkit_nci5k", "out=OUT", "lr=[1"], "override lr=[1: expected a YAML value"),
        (["adapt", "checkpoint=CNN", "data=rdkit_nci5k", "out=OUT", "groups="], "groups=: expected list, got an empty"),
        (
            ["adapt", "checkpoint=CNN", "data=rdkit_nci5k", "out=OUT", "groups=[]"],
            "expected at least one group",
        ),
        (["adapt", "checkpoint=CNN", "data=rdkit_nci5k", "out=OUT", "limit=20"], "the model cannot read graphs"),
        (
            ["evaluate", "checkpoint=CNN", "data=rdkit_nci5k", "limit=20"],
            "(cnn, trained on digits) on data",
        ),
        (["pretrain", "model=gin", "data=BAD/empty.csv", "out=OUT", "target_columns=y"], "got an empty file"),
        (["pretrain", "model=gin", "data=BAD/header.csv", "out=OUT", "target_columns=y", "task=regression"], "no rows"),
        (["pretrain", "model=gin", "data=BAD/header.csv", "out=OUT", "target_columns=y"], "task: expected one of"),
        (["pretrain", "model=gin", "data=esol", "out=OUT", "smiles_column=s"], "only used with data=<file.csv>"),
        (["pretrain", "model=gin", "data=BAD/none.csv", "out=OUT"], "got 'BAD/none.csv' (no such file)"),
        (["bench", "nope", "quick=true"], "bench name: expected one of ['backbones', "),
        (["pretrain", "data=rdkit_nci5k", "out=OUT"], "missing required key 'model'"),
        (["pretrain", "model=gin", "data=nope", "out=OUT"], "dataset name: expected one of"),
        (["pretrain", "model=gin", "data=rdkit_nci5k", "out=OUT", "epochs=abc"], "override epochs=abc: expected int"),
        (["adapt", "checkpoint=missing.pt", "data=rdkit_nci5k", "out=OUT"], "'missing.pt' not found"),
        (["pretrain", "model=gin", "data=rdkit_nci5k", "out=OUT", "colour=red"], "unknown key 'colour'"),
        (
            ["pretrain", "model=gin", "data=rdkit_nci5k", "out=OUT", "device=gpu"],
            "device: expected 'auto', 'cpu', 'cuda' or 'cuda:N', got 'gpu'",
        ),
        (["evaluate", "checkpoint=CNN", "data=digits", "device=cuda:x"], "device: expected 'auto', 'cpu', 'cuda'"),
        (
            ["adapt", "checkpoint=CNN", "data=digits", "out=OUT", "precision=16"],
            "precision: expected one of ['32', 'bf16', 'fp16'], got '16'",
        ),
        (
            ["adapt", "checkpoint=CNN", "data=digits", "out=OUT", "device=cpu", "precision=fp16"],
            "precision: expected 'fp16' only on a CUDA device",
        ),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_run_folder(argv, message, tmp_path, capsys, image_checkpoint, bad_files):
    out_dir = tmp_path / "run"
    argv = [a.replace("OUT", str(out_dir)).replace("CNN", str(image_checkpoint)) for a in argv]
    message = message.replace("BAD", str(bad_files))
    code, _, err = run(capsys, *[a.replace("BAD", str(bad_files)) for a in argv])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no run folder, partial folder or lock file


def test_cuda_without_a_gpu_is_a_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    code, _, err = run(capsys, "pretrain", "model=gin", "data=rdkit_nci5k", f"out={tmp_path / 'run'}", "device=cuda")
    assert code == 2 and "device: expected a CUDA device torch can use, got 'cuda'" in err
    assert not any(tmp_path.iterdir())


def test_bench_takes_the_name_as_the_readme_writes_it(capsys):
    # `geoadapt bench equivariance_eval quick=true` (README): the first word is the benchmark's name.
    code, _, err = run(capsys, "bench", "equivariance_evaluation", "quick=true")
    assert code == 2 and "got 'equivariance_evaluation'" in err and "equivariance_eval" in err


@pytest.mark.parametrize(
    "overrides,message",
    [
        ({"constrained": {"epsilon": 0.01}}, "constrained: expected at least one entry in regularizers"),
        ({"mixed": True}, "mixed: expected at least one entry in regularizers"),
        (
            {"regularizers": ["so3"], "mixed": True, "constrained": {"epsilon": 0.01}},
            "expected either constrained or mixed=true, got both",
        ),
        ({"regularizers": ["so3"], "constrained": {"epsilon": 0.01, "bogus": 1}}, "got unknown ['bogus']"),
        ({"regularizers": [{"group": "so3", "wieght": 1}]}, "regularizers: expected keys among"),
        (
            {"regularizers": [{"group": "so3", "balance_every": "often"}]},
            "regularizers.balance_every: expected a number",
        ),
        ({"regularizers": ["so3"], "constrained": {"margin": "high"}}, "constrained.margin: expected a number"),
        ({"regularizers": [{"group": "so3", "n_samples": "2.5"}]}, "regularizers.n_samples: expected a whole number"),
        ({"regularizers": ["so3"], "constrained": 0.001}, "constrained: expected a mapping such as"),
        ({"regularizers": ["so3"], "constrained": {"homotopy": 3}}, "constrained.homotopy: expected [epsilon_start"),
        ({"regularizers": ["so3"], "constrained": {"homotopy": [0.1, 2.5]}}, "homotopy: expected (epsilon_start > 0"),
    ],
)
def test_regularizer_options_that_cannot_apply_are_refused(overrides, message):
    """A constraint without a regularizer to constrain, or an unknown option, is an error, never silently dropped."""
    from geoadapt import Spec
    from geoadapt.cli.keys import DEFAULTS
    from geoadapt.regularizers.from_config import regularizers_from_config

    spec = Spec(fields={"pos": "1o", "x": "9x0e"}, output="0e", positions=("pos",))
    with pytest.raises(ValueError) as caught:
        regularizers_from_config({**DEFAULTS["adapt"], **overrides}, spec)
    assert message in str(caught.value), caught.value


def test_numbers_yaml_reads_as_text_become_numbers():
    """YAML 1.1 reads ``1e-3`` as a string: every numeric option of the regularizers is read as a number."""
    from geoadapt import Spec
    from geoadapt.cli.config import ConfigError
    from geoadapt.cli.keys import DEFAULTS
    from geoadapt.regularizers.from_config import regularizers_from_config

    spec = Spec(fields={"pos": "1o", "x": "9x0e"}, output="0e", positions=("pos",))
    entry = {"group": "so3", "batch_fraction": "5e-1", "balance_every": "1e1", "n_samples": 2.0, "weight": "auto"}
    entry["balance_ratio"] = "7.5e-1"
    (reg,) = regularizers_from_config(
        {**DEFAULTS["adapt"], "regularizers": [entry], "constrained": {"margin": "7e-1"}}, spec
    )
    assert reg.margin == 0.7 and reg.term.batch_fraction == 0.5 and reg.term.auto_weight
    assert reg.term.balance_ratio == 0.75
    assert reg.term.balance_every == 10 and type(reg.term.balance_every) is int and type(reg.term.n_samples) is int
    (auto,) = regularizers_from_config(
        {**DEFAULTS["adapt"], "regularizers": [{"group": "so3", "balance_ratio": "auto"}]}, spec
    )
    assert auto.ratio_option == "auto"
    with pytest.raises(ConfigError, match="regularizers.batch_fraction: expected a number, got 'auto'"):
        regularizers_from_config(
            {**DEFAULTS["adapt"], "regularizers": [{"group": "so3", "batch_fraction": "auto"}]}, spec
        )


needs_sevenn = pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("sevenn") is None, reason="optional extra sevennet"
)


def test_model_or_checkpoint_exactly_one(capsys):
    code, _, err = run(capsys, "evaluate", "model=sevennet_0", "checkpoint=x.pt", "data=md17_ethanol")
    assert code == 2 and "checkpoint, model: expected exactly one" in err
    code, _, err = run(capsys, "adapt", "data=md17_ethanol", "out=unused")
    assert code == 2 and "got neither" in err


@needs_sevenn
@pytest.mark.slow
def test_evaluate_a_registered_pretrained_potential_reports_its_forces(capsys):
    argv = ["evaluate", "model=sevennet_0", "groups=[se3,o3]", "data=md17_ethanol", "samples=2", "--json"]
    code, out, _ = run(capsys, *argv)
    card = json.loads(out)
    assert code == 0 and card["arch"] == "sevennet_0"
    forces = {row["group"]: row["error"] for row in card["forces"]}
    assert forces["SE3(scale=1.0)"] <= 1e-4 and forces["O3"] > 1e-3  # rotations kept, mirror images broken


@needs_sevenn
@pytest.mark.slow
def test_adapt_a_registered_pretrained_potential_with_lora(tmp_path, capsys):
    from geoadapt.checkpoints import load

    out_dir = tmp_path / "lora"
    argv = ["adapt", "model=sevennet_0", "data=md17_ethanol", "task=potential", "strategy=lora", f"out={out_dir}"]
    code, out, _ = run(capsys, *argv, "epochs=1", "batch_size=8", "groups=[se3]", "progress=false")
    assert code == 0 and "meV/atom" in out and "lora: rank-4 adapters on 18 layers" in out
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["val_force_rmse"] > 0 and summary["val_equivariance_error"] <= 1e-4
    loaded = load(out_dir / "model.pt")
    assert loaded.arch == "sevennet_0" and [s["strategy"] for s in loaded.adaptations] == ["lora"]
    code, _, err = run(capsys, *argv[:2], "data=qm9_subset", "task=potential", f"out={tmp_path / 'x'}")
    assert code == 2 and "data: expected md17_<molecule>" in err


def test_a_model_built_by_name_starts_from_the_runs_seed():
    """``adapt model=<architecture>`` builds a random init: the same for the same seed (in any process, so a
    resumed run matches an uninterrupted one), another for another seed, and the global RNG is left alone."""
    from geoadapt.cli.models import model_from_config

    def params(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(1000 + seed)  # whatever the process drew before
        return [p.detach().clone() for p in model_from_config({"model": "naive_gnn", "seed": seed}).parameters()]

    first, again, other = params(0), params(0), params(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not all(torch.equal(a, b) for a, b in zip(first, other))
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    model_from_config({"model": "naive_gnn", "seed": 0})
    assert torch.equal(torch.rand(3), expected)
