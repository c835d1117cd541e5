"""docs/cli.md: its key tables are the parser's, its exit codes are main's, and its examples run as written."""

from __future__ import annotations

import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest

from geoadapt.cli import EVALUATE_OPTIONS, EXIT_BAD_INPUT, EXIT_INTERRUPTED, EXIT_OK, main
from geoadapt.cli.keys import DEFAULTS, HELP, KEYS, keys_markdown

DOCS = (Path(__file__).resolve().parents[1] / "docs" / "cli.md").read_text()
# Appended to each example (later keys win), to keep the runs small.
QUICK = {"pretrain": ["limit=60", "epochs=1", "progress=false"], "adapt": ["limit=60", "epochs=1", "progress=false"]}


def documented_table(command: str) -> str:
    found = re.search(rf"<!-- keys:{command} -->\n(.*?)\n<!-- /keys:{command} -->", DOCS, flags=re.S)
    assert found, f"docs/cli.md has no key table for {command}"
    return found.group(1)


@pytest.mark.parametrize("command", list(HELP))
def test_each_command_has_a_section_with_the_parsers_keys(command):
    assert f"\n## {command}\n" in DOCS
    expected = keys_markdown(command)
    assert documented_table(command) == expected, f"regenerate the table of {command} in docs/cli.md:\n{expected}"
    assert all(f"| `{key}` |" in expected for key in DEFAULTS[command])
    assert all(key.help.strip() for key in KEYS[command])


def test_the_options_of_evaluate_are_documented():
    section = DOCS.split("\n## evaluate\n")[1].split("\n## ")[0]
    assert all(f"--{key}" in section for key in EVALUATE_OPTIONS)
    assert "--json" in section


def test_the_exit_codes_table_is_mains():
    table = DOCS.split("## Exit codes and errors")[1].split("\n\n")[1]
    codes = {int(row.split("|")[1]) for row in table.splitlines()[2:]}
    assert codes == {EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED}


def examples() -> list[list[str]]:
    """The command lines of the ```bash blocks, top to bottom, without the leading ``geoadapt``."""
    lines = [
        line for block in re.findall(r"^```bash\n(.*?)^```", DOCS, flags=re.M | re.S) for line in block.splitlines()
    ]
    commands = [shlex.split(line) for line in lines if line.strip()]
    assert commands and all(argv[0] == "geoadapt" for argv in commands)
    return [argv[1:] for argv in commands]


def write_structures(folder: Path) -> None:
    """train.extxyz (with IsolatedAtom frames), val.extxyz and test.extxyz: EMT-labelled Cu and Au structures."""
    import ase.io

    from geoadapt.data.emt import emt_structures, isolated_atoms

    metals = ("Cu", "Au")
    ase.io.write(folder / "train.extxyz", emt_structures(8, seed=0, elements=metals) + isolated_atoms(metals))
    ase.io.write(folder / "val.extxyz", emt_structures(3, seed=1, elements=metals))
    ase.io.write(folder / "test.extxyz", emt_structures(3, seed=2, elements=metals))


def runnable(argv: list[str]) -> bool:
    """Whether an example runs here: the SevenNet-0 ones (and those reading their run) need the sevennet extra."""
    needs_sevenn = any("sevennet" in a or "emt-lora" in a for a in argv)
    return not needs_sevenn or importlib.util.find_spec("sevenn") is not None


def test_every_example_runs_top_to_bottom(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write_structures(tmp_path)
    assert {argv[0] for argv in examples()} == set(HELP)  # one example at least for every command
    outputs = []
    for argv in filter(runnable, examples()):
        code = main([*argv, *QUICK.get(argv[0], [])])
        out, err = capsys.readouterr()
        assert code == EXIT_OK, (argv, err)
        outputs.append((argv, out))
    cards = [json.loads(out) for argv, out in outputs if "--json" in argv]
    assert cards and all(card["groups"] and card["data"] == "esol" for card in cards)
    report = next(out for argv, out in outputs if argv[0] == "report")
    assert all(run in report for run in ("runs/nci", "runs/chembl ", "runs/chembl-lora"))
    assert (tmp_path / "runs" / "chembl" / "summary.json").is_file()
    if not runnable(["sevennet_0"]):
        return
    potential = next(out for argv, out in outputs if "data=train.extxyz" in argv)
    assert "energy reference: the isolated-atom energies" in potential and "replay: 16 source-like" in potential
    card = next(out for argv, out in outputs if "data=test.extxyz" in argv)
    assert "| source-like crystals labelled by sevennet_0 | 8" in card and "| test.extxyz" in card
    assert (tmp_path / "results" / "quick" / "datasets.json").is_file()
