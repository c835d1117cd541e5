"""Reading ``results/``: the JSON and markdown files the benchmark scripts write, and the formats of the pages.

The tables are built here rather than with ``geoadapt.report.table`` so that the docs build reads JSON only and
never imports the library: the JSON is the contract between the benchmarks and the pages.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "results"


def use(root: Path) -> None:
    """Read results from ``root`` from now on (the tests render pages from a changed copy)."""
    global RESULTS
    RESULTS = Path(root)
    J.cache_clear()


@cache
def J(path: str) -> dict:
    """The JSON file ``results/<path>``."""
    return json.loads((RESULTS / path).read_text())


def M(path: str, level: int = 4) -> str:
    """The markdown file ``results/<path>``, its headings moved so that the highest is ``level``."""
    text = (RESULTS / path).read_text().strip()
    found = [len(h) for h in re.findall(r"^(#+) ", text, flags=re.M)]
    if found:
        shift = level - min(found)
        text = re.sub(r"^(#+) ", lambda m: "#" * (len(m.group(1)) + shift) + " ", text, flags=re.M)
    return text


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def pm(pair: Sequence[float], spec: str = ".3f") -> str:
    """``mean ± std`` of a ``[mean, std]`` pair."""
    return f"{pair[0]:{spec}} ± {pair[1]:{spec}}"


def num(value: float, spec: str = ".3f") -> str:
    """``value`` formatted with ``spec``."""
    return f"{value:{spec}}"


def signed(value: float, spec: str = ".3f") -> str:
    """``value`` with its sign (``+0.020``, ``-0.013``)."""
    return f"{value:+{spec}}"


def machine(path: str) -> str:
    """Where ``results/<path>`` was measured, in one phrase."""
    info = J(path)["machine"]
    cores = f"{info['cores']} CPU cores, " if "cores" in info else ""
    threads = f"{info['threads']} torch thread" + ("s" if info["threads"] != 1 else "")
    return f"{cores}{threads}, torch {info['torch']}, Python {info['python']}"
