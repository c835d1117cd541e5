"""``geoadapt`` command line: pretrain, adapt, evaluate, report, bench, datasets.

Every command takes ``--config file.yaml`` and ``key=value`` overrides (values parsed as YAML, and
checked against the type of the default; the keys are in :mod:`geoadapt.cli.keys`). Errors print one line and
exit 2; ``--debug`` shows the traceback. Ctrl-C keeps the run's partial folder and prints the command that
resumes it (exit 130). Each command is a module of this package with a ``run(config)`` function.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from geoadapt.cli.keys import HELP, keys_line
from geoadapt.errors import ConfigError

EXIT_OK, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 2, 130
EVALUATE_OPTIONS = ("checkpoint", "model", "data", "groups")  # evaluate also takes these as --options
ERRORS = (ConfigError, ValueError, OSError, TypeError, KeyError, FloatingPointError)  # reported in one line

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one sub-command each)."""
    from geoadapt import __version__

    parser = argparse.ArgumentParser(
        prog="geoadapt", description="Adapt pretrained geometric models without losing their symmetry."
    )
    parser.add_argument("--version", action="version", version=f"geoadapt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in HELP.items():
        p = sub.add_parser(name, help=text, description=f"{text}. Keys: {keys_line(name)}.")
        p.add_argument("--config", help="YAML file with keys (overridden by key=value arguments)")
        p.add_argument("--debug", action="store_true", help="show the full traceback on error")
        if name == "evaluate":
            for key in EVALUATE_OPTIONS:
                p.add_argument(f"--{key}", dest=f"opt_{key}")
            p.add_argument("--json", dest="opt_json", action="store_true")
        if name == "report":
            p.add_argument("runs", nargs="*", help="run folders (or key=value overrides)")
        elif name == "bench":
            p.add_argument("overrides", nargs="*", help="the benchmark's name, then key=value overrides")
        else:
            p.add_argument("overrides", nargs="*", help="key=value overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``geoadapt`` command; returns the exit code (0, 2 for bad input, 130 on Ctrl-C)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return _run(args, argv)
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's final flush
        return EXIT_OK


def overrides_of(args: argparse.Namespace) -> list[str]:
    """The ``key=value`` overrides of the command line, with the words and options some commands take."""
    overrides = list(getattr(args, "overrides", []) or [])
    if args.command == "report":
        runs = [r for r in args.runs if "=" not in r]
        overrides = [r for r in args.runs if "=" in r] + ([f"runs={','.join(runs)}"] if runs else [])
    if args.command == "bench" and overrides and "=" not in overrides[0]:
        overrides[0] = f"name={overrides[0]}"  # `geoadapt bench equivariance_eval quick=true`
    for key in EVALUATE_OPTIONS:
        if getattr(args, f"opt_{key}", None):
            overrides.append(f"{key}={getattr(args, f'opt_{key}')}")
    if getattr(args, "opt_json", False):
        overrides.append("json=true")
    return overrides


def _interrupted(kept, argv: list[str], command: str) -> str:
    from geoadapt.cli.runs import resume_command

    if kept is None:
        return "interrupted; nothing to resume was kept"
    folder, done = kept
    what = f"{done} row(s) read" if command == "predict" else f"{done} epoch(s)"
    return f"interrupted after {what}; the run so far is kept in {folder}; resume with: {resume_command(argv)}"


def _run(args: argparse.Namespace, argv: list[str]) -> int:
    from geoadapt.cli.config import resolve
    from geoadapt.cli.runs import kept_run, resume_command
    from geoadapt.runs import RunFolderError

    config = None
    try:
        config = resolve(args.command, args.config, overrides_of(args))
        importlib.import_module(f"geoadapt.cli.{args.command.replace('-', '_')}").run(config)
    except KeyboardInterrupt:
        print(f"geoadapt {args.command}: {_interrupted(kept_run(args, config), argv, args.command)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ERRORS as err:
        if args.debug:
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        kept = None if isinstance(err, RunFolderError) else kept_run(args, config)
        if kept is not None:
            message += f"; the run so far is kept in {kept[0]} (resume with: {resume_command(argv)})"
        print(f"geoadapt {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    return EXIT_OK
