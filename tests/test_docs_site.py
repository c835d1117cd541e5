"""The documentation site: ``mkdocs build --strict`` passes offline, and the results pages follow the JSON."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def generator():
    """docs/gen_results.py, imported as the MkDocs hook imports it."""
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import gen_results
    finally:
        sys.path.remove(str(ROOT / "docs"))
    return gen_results


def test_mkdocs_build_strict(tmp_path):
    # Broken links, missing anchors, pages missing from the nav and docstring problems all fail a strict build.
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    molecular = (site / "results" / "molecular" / "index.html").read_text()
    cut = json.loads((ROOT / "results" / "molecular_adaptation_esol.json").read_text())
    expected = f"{cut['backbones']['pretrained']['checks']['regularizer']['error_cut']:.1f}x"
    assert expected in molecular  # a number of the JSON, rendered into the generated page
    assert "doc-function" in (site / "api" / "metrics" / "index.html").read_text()  # mkdocstrings rendered the API
    assert (site / "tutorials" / "a_measure_equivariance" / "index.html").is_file()
    assert not (ROOT / "docs" / "results").exists()  # generated pages live only in the build


def test_results_pages_follow_their_json(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(ROOT / "results", results, ignore=shutil.ignore_patterns("*.pt", "quick"))
    path = results / "molecular_adaptation_esol.json"
    data = json.loads(path.read_text())
    data["backbones"]["pretrained"]["checks"]["regularizer"]["error_cut"] = 123.456
    path.write_text(json.dumps(data))
    overhead = results / "regularizer_overhead.json"
    rows = json.loads(overhead.read_text())
    (default,) = [r for r in rows["rows"] if r["library_default"] and r["model"] == "naive_gnn"]
    default["ratio"] = 9.87
    overhead.write_text(json.dumps(rows))
    pages = generator().render(results)
    assert "123.5x" in pages["results/molecular.md"]
    assert "**9.87x** a plain epoch" in pages["results/overhead.md"]


def test_every_results_page_names_the_command_that_regenerates_it():
    pages = generator().render()
    assert len(pages) >= 12
    for name, text in pages.items():
        if name == "results/index.md":
            continue
        commands = re.findall(r"```bash\n(.*?)```", text, flags=re.S) + re.findall(r"`(python [^`]+)`", text)
        assert any("benchmarks/" in c or "geoadapt.demo" in c for c in commands), name
        assert "{{" not in text and "{%" not in text, name


@pytest.mark.parametrize("stem", ["a_measure_equivariance", "f_foundation_potential"])
def test_tutorial_pages_hold_the_scripts_code(stem):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import hooks
    finally:
        sys.path.remove(str(ROOT / "docs"))
    script = (ROOT / "tutorials" / f"{stem}.py").read_text()
    page = hooks.tutorial_page(ROOT / "tutorials" / f"{stem}.py")
    code = "\n".join(re.findall(r"```python\n(.*?)```", page, flags=re.S))
    lines = [line for line in script.splitlines() if line.strip() and not line.startswith("#")]
    assert lines and all(line in code for line in lines)  # every line of code is on the page
    assert page.startswith("# (")  # the script's title is the page's title
