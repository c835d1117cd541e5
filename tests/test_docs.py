"""Every ```python block of README.md and docs/**/*.md runs as written (in a quick form where it trains), the
printed numbers make sense, the command-line blocks run, and the site builds with ``mkdocs build --strict``.

Each python block runs on its own, in a fresh namespace and an empty working folder: a page's blocks must not
depend on one another. A block that must not run (a shell session, an output) takes another fence language.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

from geoadapt.cli import main

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


@dataclass(frozen=True)
class Block:
    page: str  # "README.md" or a path under docs/
    heading: str  # the nearest heading above the block
    code: str


def pages() -> dict[str, str]:
    """``{page: markdown}`` for the README and every page written in docs/ (templates are not pages)."""
    found = {"README.md": (ROOT / "README.md").read_text()}
    for path in sorted(DOCS.rglob("*.md")):
        if "templates" not in path.relative_to(DOCS).parts:
            found[path.relative_to(DOCS).as_posix()] = path.read_text()
    return found


def code_blocks(language: str) -> list[Block]:
    """Every fenced block in ``language``, with its page and the heading above it."""
    blocks = []
    for page, text in pages().items():
        heading = ""
        # Headings, and fenced blocks of any language taken whole (a "# comment" inside one is no heading).
        for match in re.finditer(r"^#{1,4} ([^\n]+)$|^```(\w*)\n(.*?)^```", text, flags=re.M | re.S):
            if match.group(1) is not None:
                heading = match.group(1).strip()
            elif match.group(2) == language:
                blocks.append(Block(page, heading, match.group(3)))
    return blocks


def where(block: Block) -> str:
    return f"{block.page} ({block.heading})"


def unique(blocks: list[Block]) -> list[Block]:
    """One block per distinct code (the README repeats a few blocks of the docs): each runs once."""
    seen: dict[str, Block] = {}
    for block in blocks:
        seen.setdefault(block.code, block)
    return list(seen.values())


PYTHON, BASH = code_blocks("python"), code_blocks("bash")
# Shorter training for the test suite, per page; every replacement must still match the block.
QUICK = {
    "how-to/adapt.md": [
        ('epochs=20, augment="so3")', 'epochs=1, augment="so3", limit=300)'),
        ('split="train")', 'split="train", limit=500)'),
        ('split="val")', 'split="val", limit=500)'),
        ("max_epochs=30", "max_epochs=5"),
    ]
}
# Overrides appended to each command line (later keys win), to keep runs small.
QUICK_COMMANDS = {
    "pretrain": ["limit=60", "epochs=1", "progress=false"],
    "adapt": ["limit=60", "epochs=1", "progress=false"],
    "evaluate": ["limit=40"],
}


def run_python(block: Block, folder: Path, monkeypatch, replace: list[tuple[str, str]] | None = None):
    """Run one block in ``folder``; return its namespace and what it printed."""
    code = block.code
    for old, new in QUICK.get(block.page, []) + (replace or []):
        assert old in code, f"{where(block)} no longer contains {old!r}: update the test"
        code = code.replace(old, new)
    monkeypatch.chdir(folder)
    namespace: dict = {"__name__": "__docs__"}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, where(block), "exec"), namespace)
    return namespace, printed.getvalue()


def find(page: str, heading: str, language: str = "python") -> Block:
    blocks = [b for b in (PYTHON if language == "python" else BASH) if b.page == page and b.heading == heading]
    assert blocks, f"no {language} block under {heading!r} in {page}"
    return blocks[0]


# What each block must print or leave behind; the key is the block's first place (page, heading).


def check_quick_start(namespace: dict, printed: str) -> None:
    import torch

    err, score = namespace["err"], float(printed.split()[-1])
    assert err.shape == (8, 3) and printed.startswith("torch.Size([8, 3])")
    assert 0 <= float(err.max()) < 1e-3  # e3nn_gnn is E(3)-equivariant by construction (float32 noise)
    assert 0.999 < score <= 1.0 and torch.isfinite(err).all()


def check_spec(namespace: dict, printed: str) -> None:
    spec = namespace["spec"]
    assert set(spec.fields) == {"pos", "x", "force"} and spec.positions == ("pos",)


def check_adapting(namespace: dict, printed: str) -> None:
    metrics = ast.literal_eval(printed.strip().splitlines()[-1])
    assert metrics["r2"] > 0.3, metrics  # ESOL on its own target scale (the source's scale gave R² < -10)
    assert 0 < metrics["rmse"] < 2.0 and metrics["equivariance_error/Permutation()"] < 1e-5
    (constraint,) = namespace["trainer"].constraints
    assert constraint["epsilon"] == 1e-3 and isinstance(constraint["met"], bool)


def check_groups(namespace: dict, printed: str) -> None:
    assert printed.split() == ["True", "True"]  # a homomorphism; an equivariant model


def check_assert_equivariant(namespace: dict, printed: str) -> None:
    assert printed.strip() == "equivariant"


def check_regularizer_defaults(namespace: dict, printed: str) -> None:
    assert printed.split() == ["1", "0.25", "2"]  # the defaults the page states
    assert namespace["bound"].epsilon == 1e-3


def check_strategies(namespace: dict, printed: str) -> None:
    names, counts = printed.strip().splitlines()
    assert "lora" in names and "parity_average" in names
    trainable, total = (int(w) for w in counts.split() if w.isdigit())
    assert 0 < trainable < total


def check_cards(namespace: dict, printed: str) -> None:
    assert "esol" in namespace["card_names"]() and namespace["card"]["task"] == "regression"


def check_csv(namespace: dict, printed: str) -> None:
    mols = namespace["mols"]
    assert len(mols) == 3 and mols.dropped["parse"] == [3] and mols.dropped["nan_target"] == [4]


def check_backbones(namespace: dict, printed: str) -> None:
    assert {"gin", "e3nn_gnn", "sevennet_0"} <= set(namespace["available"]())
    assert namespace["model"].symmetry == "Permutation x E3"


def check_potential(namespace: dict, printed: str) -> None:
    lines = printed.strip().splitlines()
    assert lines[0] == "torch.Size([4, 1]) torch.Size([36, 3])"
    errors = {line.split()[0].split("(")[0]: float(line.split()[-1]) for line in lines[1:]}
    assert errors["SE3"] < 1e-4 < 1e-3 < errors["O3"]  # rotations: round-off; mirrors: SevenNet-0 has no parity


def check_own_task(namespace: dict, printed: str) -> None:
    from geoadapt.tasks import TASKS

    before, after, distance = printed.strip().splitlines()
    start, end = float(before.split()[-1]), float(after.split()[-1])
    assert TASKS["ring_atoms"] is namespace["RingAtoms"] and end >= 0.85 and end > start + 0.2, printed
    assert distance.split()[2].rstrip(",") == "js" and float(distance.split()[-1]) < 1e-4  # EGNN: round-off


def check_stress(namespace: dict, printed: str) -> None:
    errors = {line.split(":")[0]: [float(v) for v in line.split()[1:4:2]] for line in printed.strip().splitlines()}
    assert set(errors) == {"energy_mae", "force_rmse", "stress_mae"}
    assert (
        errors["energy_mae"][1] < errors["energy_mae"][0] / 100
    )  # the shift refit: SevenNet-0's reference is not EMT's
    assert errors["force_rmse"][1] < errors["force_rmse"][0] and errors["stress_mae"][1] < errors["stress_mae"][0]


CHECKS = {
    ("README.md", "Quick start: measure the equivariance of a model"): check_quick_start,
    ("concepts/spec.md", "Spec"): check_spec,
    ("how-to/adapt.md", "Adapt a model while keeping its symmetry"): check_adapting,
    ("concepts/groups.md", "The shared group API"): check_groups,
    ("concepts/error.md", "In your tests"): check_assert_equivariant,
    ("regularizers.md", "Regularizers"): check_regularizer_defaults,
    ("strategies.md", "Adaptation strategies"): check_strategies,
    ("how-to/datasets.md", "Dataset cards"): check_cards,
    ("how-to/datasets.md", "Your own molecules"): check_csv,
    ("backbones.md", "Backbones"): check_backbones,
    ("foundation-potentials.md", "Foundation potentials"): check_potential,
    ("tasks.md", "A task of your own"): check_own_task,
    ("tasks.md", "Potentials, with stress"): check_stress,
}
OWN_MODEL = ("README.md", "Your own model in ten lines")
OWN_LOOP = ("README.md", "Your own training loop in ten lines")


def test_every_check_names_a_block():
    places = {(b.page, b.heading) for b in unique(PYTHON)}
    assert set(CHECKS) | {OWN_MODEL, OWN_LOOP} <= places
    assert len(unique(PYTHON)) >= len(CHECKS) + 2


# Pages whose blocks a test of their own runs and checks more closely (each block still runs once).
CHECKED_ELSEWHERE = {"potentials.md": "tests/io/test_docs.py", "own-loop.md": "tests/test_own_loop_doc.py"}


def _params():
    import importlib.util

    no_sevenn = importlib.util.find_spec("sevenn") is None
    for block in unique(PYTHON):
        if block.page in CHECKED_ELSEWHERE:
            continue
        needs = "sevennet" in block.code  # the optional extra geoadapt[sevennet]
        marks = [pytest.mark.skipif(needs and no_sevenn, reason="optional extra sevennet")]
        yield pytest.param(block, id=where(block), marks=marks)


@pytest.mark.parametrize("block", list(_params()))
def test_python_block_runs(block, tmp_path, monkeypatch):
    if (block.page, block.heading) == OWN_MODEL:
        import torch

        torch.manual_seed(0)  # the block draws its model's initial weights: the check compares the same draw
    namespace, printed = run_python(block, tmp_path, monkeypatch)
    check = CHECKS.get((block.page, block.heading))
    if (block.page, block.heading) == OWN_MODEL:
        check_own_model(namespace, printed, tmp_path, monkeypatch)
    elif (block.page, block.heading) == OWN_LOOP:
        check_own_loop(printed, tmp_path, monkeypatch)
    elif check is not None:
        check(namespace, printed)


def check_own_model(namespace: dict, printed: str, folder: Path, monkeypatch) -> None:
    """The wrapped model learns ESOL, is more invariant than the same model trained without the regularizer
    (the independent route), and comes back from its checkpoint with the same weights."""
    import torch

    metrics = ast.literal_eval(printed.strip().splitlines()[-1])
    assert metrics["r2"] > 0.2, metrics
    trained, same = namespace["trainer"].model, namespace["same"]
    assert all(torch.equal(a, b) for a, b in zip(trained.state_dict().values(), same.state_dict().values()))
    plain = [("regularizers=[EquivarianceRegularizer(SO3(), model.spec)]", "regularizers=[], groups=[SO3()]")]
    torch.manual_seed(0)  # from the same initial weights
    _, unregularized = run_python(find(*OWN_MODEL), folder, monkeypatch, plain)
    baseline = ast.literal_eval(unregularized.strip().splitlines()[-1])
    assert metrics["equivariance_error"] < 0.6 * baseline["equivariance_error"], (metrics, baseline)


def check_own_loop(printed: str, folder: Path, monkeypatch) -> None:
    """The loop set its weight, and it keeps the model at least 5x more rotation invariant (measured by the metrics,
    relative to the targets' spread) than the same loop without the regularizer, from the same initial weights."""
    import torch
    from torch_geometric.loader import DataLoader

    from geoadapt.groups import SO3
    from geoadapt.metrics import measure_equivariance

    assert float(re.search(r"penalty weight (\S+)", printed).group(1)) != 1.0
    errors = {}
    for name, replace in (
        ("regularized", []),
        ("plain", [("task + reg(model, batch, outputs=out, task_loss=task)", "task")]),
    ):
        torch.manual_seed(0)
        namespace, _ = run_python(find(*OWN_LOOP), folder, monkeypatch, replace)
        model, batches = namespace["model"], list(DataLoader(namespace["graphs"], batch_size=64))
        generator = torch.Generator().manual_seed(0)
        errors[name] = measure_equivariance(model, batches, SO3(), model.spec, 4, generator, scale=1.0).error
    assert 5 * errors["regularized"] <= errors["plain"], errors


def test_the_same_block_says_the_same_in_every_place():
    # The README repeats the quick start and the own-model block of the docs: they must not drift apart.
    readme = {b.heading: b.code for b in PYTHON if b.page == "README.md"}
    assert (
        readme["Quick start: measure the equivariance of a model"]
        == find("getting-started.md", "Measure the equivariance of a model").code
    )
    assert readme["Your own model in ten lines"] == find("how-to/own-model.md", "In ten lines").code


def test_the_two_commands_are_make_targets():
    # `make test` is this suite; `make demo` runs geoadapt.demo, which tests/test_benchmarks.py runs quick.
    for page in ("README.md", "getting-started.md"):
        block = find(page, "The two commands", "bash")
        lines = [shlex.split(line, comments=True) for line in block.code.splitlines()]
        assert lines == [["make", "demo"], ["make", "test"]]
    makefile = (ROOT / "Makefile").read_text()
    assert "\ndemo: " in makefile and "-m geoadapt.demo" in makefile and "\ntest: " in makefile


def run_commands(block: str, tmp_path: Path, capsys) -> list[tuple[list[str], str]]:
    outputs = []
    for line in block.splitlines():
        argv = shlex.split(line, comments=True)
        assert argv[0] == "geoadapt", line
        argv = [*argv[1:], *QUICK_COMMANDS.get(argv[1], [])]
        if argv[0] == "bench":
            argv.append(f"out={tmp_path / 'results'}")
        if argv == ["--help"]:
            with pytest.raises(SystemExit) as exit_info:
                main(argv)
            assert exit_info.value.code == 0
        else:
            code = main(argv)
            assert code == 0, (line, capsys.readouterr().err)
        outputs.append((argv, capsys.readouterr().out))
    return outputs


def test_command_line_block_runs_top_to_bottom(tmp_path, monkeypatch, capsys):
    (tmp_path / "configs").symlink_to(ROOT / "configs")
    monkeypatch.chdir(tmp_path)
    block = find("getting-started.md", "From the command line", "bash").code
    outputs = dict((argv[0], out) for argv, out in run_commands(block, tmp_path, capsys))
    assert "rdkit_nci5k" in outputs["datasets"] and "| yes" in outputs["datasets"]
    assert (tmp_path / "runs" / "adapt-chembl-constrained" / "summary.json").is_file()
    assert "SO3" in outputs["evaluate"] and "Permutation" in outputs["evaluate"]
    assert "pretrain-naive-nci5k" in outputs["report"] and "adapt-chembl-constrained" in outputs["report"]
    assert (tmp_path / "results" / "equivariance_eval.json").is_file()


def test_your_own_molecules_block(tmp_path, monkeypatch, capsys):
    import csv
    import os

    source = Path(os.environ["GEOADAPT_DATA"]) / "MoleculeNet" / "esol" / "raw" / "delaney-processed.csv"
    with source.open() as handle:
        rows = list(csv.DictReader(handle))[:60]
    target = "measured log solubility in mols per litre"
    (tmp_path / "mols.csv").write_text("smiles,logS\n" + "".join(f"{r['smiles']},{r[target]}\n" for r in rows))
    median = sorted(float(r[target]) for r in rows)[len(rows) // 2]
    (tmp_path / "assay.csv").write_text(
        "smiles,active\n" + "".join(f"{r['smiles']},{int(float(r[target]) > median)}\n" for r in rows)
    )
    monkeypatch.setenv("GEOADAPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    run_commands(find("how-to/datasets.md", "Your own molecules", "bash").code, tmp_path, capsys)
    assert (tmp_path / "runs" / "mine" / "model.pt").is_file()
    assert "val_accuracy" in (tmp_path / "runs" / "assay" / "summary.json").read_text()


def test_readme_links_point_at_files_that_exist():
    # mkdocs checks the links of docs/; the README is read on its own (a repository page, a package page).
    text = (ROOT / "README.md").read_text()
    links = [link.split("#")[0] for link in re.findall(r"\]\(([^)]+)\)", text) if "://" not in link]
    missing = [link for link in links if not (ROOT / link).is_file()]
    assert links and not missing, missing
