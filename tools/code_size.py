"""The largest modules and functions of the ``geoadapt`` package, and whether they stay within the limits.

A module may hold at most ``MODULE_LIMIT`` lines; a function at most ``FUNCTION_LIMIT``, counted from its ``def``
to its last line with its docstring aside (a docstring documents, it does not add logic to read). Prints the
largest of each and exits 1 when anything is past its limit::

    python tools/code_size.py            # the ten largest of each
    python tools/code_size.py --top 25
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

MODULE_LIMIT = 400
FUNCTION_LIMIT = 60
PACKAGE = Path(__file__).resolve().parents[1] / "geoadapt"


@dataclass(frozen=True)
class Size:
    """``lines`` of one module or function, at ``where`` (``path`` or ``path:qualified.name``)."""

    where: str
    lines: int


def _docstring_lines(node: ast.AST) -> int:
    body = getattr(node, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        if isinstance(body[0].value.value, str):
            return body[0].end_lineno - body[0].lineno + 1
    return 0


def _functions(tree: ast.AST, path: str) -> list[Size]:
    """Every function and method of ``tree`` with its size, named by its qualified name."""
    sizes: list[Size] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                first = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                lines = child.end_lineno - first + 1 - _docstring_lines(child)
                sizes.append(Size(f"{path}:{name}", lines))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            else:
                visit(child, prefix)

    visit(tree, "")
    return sizes


def measure(package: Path = PACKAGE) -> tuple[list[Size], list[Size]]:
    """``(modules, functions)`` of ``package``, each sorted largest first."""
    modules, functions = [], []
    for file in sorted(package.rglob("*.py")):
        source = file.read_text()
        where = str(file.relative_to(package.parent))
        modules.append(Size(where, len(source.splitlines())))
        functions.extend(_functions(ast.parse(source), where))
    return sorted(modules, key=lambda s: -s.lines), sorted(functions, key=lambda s: -s.lines)


def over_limits(modules: list[Size], functions: list[Size]) -> list[str]:
    """One line per module or function past its limit."""
    return [f"{s.where}: {s.lines} lines (limit {MODULE_LIMIT})" for s in modules if s.lines > MODULE_LIMIT] + [
        f"{s.where}: {s.lines} lines (limit {FUNCTION_LIMIT})" for s in functions if s.lines > FUNCTION_LIMIT
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=10, help="how many of the largest to print")
    args = parser.parse_args(argv)
    modules, functions = measure()
    print(f"largest modules (limit {MODULE_LIMIT} lines):")
    for s in modules[: args.top]:
        print(f"  {s.lines:5d}  {s.where}")
    print(f"largest functions (limit {FUNCTION_LIMIT} lines, docstrings aside):")
    for s in functions[: args.top]:
        print(f"  {s.lines:5d}  {s.where}")
    problems = over_limits(modules, functions)
    for line in problems:
        print(f"too large: {line}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
