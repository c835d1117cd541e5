"""The command line is a shell over the library: no library module, benchmark or tutorial imports it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (lazy imports inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def imports_the_command_line(path: Path) -> bool:
    return any(m == "geoadapt.cli" or m.startswith("geoadapt.cli.") for m in imported_modules(path))


def test_nothing_but_the_entry_point_imports_the_command_line():
    sources = [p for folder in ("geoadapt", "benchmarks", "tutorials") for p in (ROOT / folder).rglob("*.py")]
    command_line = [p for p in sources if p.relative_to(ROOT).parts[:2] == ("geoadapt", "cli")]
    entry_point = ROOT / "geoadapt" / "__main__.py"  # python -m geoadapt
    assert command_line and imports_the_command_line(entry_point)  # the scan sees the imports that exist
    offenders = [p.relative_to(ROOT) for p in sources if p not in command_line and p != entry_point]
    assert [str(p) for p in offenders if imports_the_command_line(ROOT / p)] == []
