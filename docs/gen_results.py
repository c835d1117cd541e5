"""The results pages of the documentation, generated from ``results/*.json`` (and ``results/*.md`` tables).

Each page is a Jinja template in ``docs/templates/results/``: prose written by hand, every number read from the
JSON that a script in ``benchmarks/`` wrote (``results_data``, ``results_molecular``, ``results_potentials``,
``results_promises``, ``results_tables`` read it); pages written in ``docs/`` that quote results are rendered the
same way (:func:`render_text`).
The MkDocs hook (``docs/hooks.py``) renders them at every build; ``python docs/gen_results.py --out DIR`` writes
them to ``DIR`` to read or diff.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import jinja2

sys.path.insert(0, str(Path(__file__).resolve().parent))
import results_data  # noqa: E402
import results_molecular  # noqa: E402
import results_potentials  # noqa: E402
import results_promises  # noqa: E402
import results_tables  # noqa: E402

TEMPLATES = Path(__file__).resolve().parent / "templates" / "results"
ROOT = results_data.ROOT


def environment() -> jinja2.Environment:
    """Templates with every public helper of the results modules in scope; an undefined name is an error."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined, keep_trailing_newline=True
    )
    for module in (results_data, results_molecular, results_potentials, results_promises, results_tables):
        env.globals.update(
            {
                name: value
                for name, value in vars(module).items()
                if callable(value)
                and not name.startswith("_")
                and getattr(value, "__module__", None) == module.__name__
            }
        )
    env.globals.update(median=statistics.median, min=min, max=max, sum=sum, len=len, round=round)
    return env


def render(results: Path | None = None) -> dict[str, str]:
    """``{page path under docs/: markdown}`` for every template (``results/<name>.md``), read from ``results``
    (default: the repository's ``results/``)."""
    results_data.use(results or results_data.ROOT / "results")
    env = environment()
    return {
        f"results/{path.name.removesuffix('.j2')}": env.get_template(path.name).render()
        for path in sorted(TEMPLATES.glob("*.md.j2"))
    }


def render_text(text: str, results: Path | None = None) -> str:
    """``text`` (a page written in docs/) rendered as a template, its numbers read from ``results``."""
    results_data.use(results or results_data.ROOT / "results")
    return environment().from_string(text).render()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Render the results pages of the documentation.")
    parser.add_argument("--out", type=Path, required=True, help="folder to write results/<page>.md into")
    args = parser.parse_args(argv)
    for name, text in render().items():
        path = args.out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
