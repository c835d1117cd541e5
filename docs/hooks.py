"""MkDocs hooks: the results pages (rendered from ``results/*.json``) and one page per tutorial script.

Both are added to the build as generated files, so nothing is written into ``docs/`` and a page can never be
stale: ``mkdocs build`` renders them from the JSON and the scripts as they are.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from mkdocs.structure.files import File, Files

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gen_results  # noqa: E402

TUTORIALS = gen_results.ROOT / "tutorials"
RESULTS = gen_results.ROOT / "results"
# Pages written in docs/ whose tables come from results/*.json: rendered as templates at every build.
TEMPLATED_PAGES = ("promises.md",)


def tutorial_page(path: Path) -> str:
    """A percent-format script (``# %%`` cells) as a page: markdown cells as text, code cells as code blocks.

    Written by hand (a few lines) instead of depending on jupytext for the docs build.
    """
    cells = re.split(r"^# %%(.*)$", path.read_text(), flags=re.M)
    parts = [cells[0].strip()] if cells[0].strip() else []
    for marker, body in zip(cells[1::2], cells[2::2]):
        body = body.strip("\n")
        if "[markdown]" in marker:
            parts.append("\n".join(re.sub(r"^# ?", "", line) for line in body.splitlines()))
        elif body.strip():
            parts.append(f"```python\n{body.strip()}\n```")
    source = f"Source: `tutorials/{path.name}`. Run it with `python tutorials/{path.name}`, or open it as a notebook"
    parts.insert(1, source + " with jupytext (`GEOADAPT_QUICK=1` runs a quick version, as the tests do).")
    return "\n\n".join(parts) + "\n"


def on_files(files: Files, config) -> Files:
    """Add the results pages, the images under ``results/`` and the tutorial pages to the build."""
    for src_uri, text in gen_results.render().items():
        files.append(File.generated(config, src_uri, content=text))
    for image in sorted(RESULTS.rglob("*.png")):
        if "quick" not in image.relative_to(RESULTS).parts:
            uri = f"results/{image.relative_to(RESULTS).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(image)))
    for script in sorted(TUTORIALS.glob("[a-z]_*.py")):
        files.append(File.generated(config, f"tutorials/{script.stem}.md", content=tutorial_page(script)))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:
    """Render the pages of ``TEMPLATED_PAGES`` with the results helpers (their numbers read from the JSON)."""
    if page.file.src_uri in TEMPLATED_PAGES:
        return gen_results.render_text(markdown)
    return markdown
