"""What the training commands say about their run: how to resume an interrupted run."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import Any

TRAINING_COMMANDS = ("pretrain", "adapt")  # the commands that keep a resumable run in <out>.partial


def resume_note(config: dict[str, Any]) -> None:
    """Say so when ``resume=true`` finds nothing to resume (the run then starts from the first epoch)."""
    from geoadapt.runs import partial_folder

    if config["resume"] and not (partial_folder(config["out"]) / "last.pt").is_file():
        print(f"resume: no interrupted run in {partial_folder(config['out'])}; starting from the first epoch")


def resume_command(argv: list[str]) -> str:
    """The command line that resumes the run of ``argv``."""
    kept = [a for a in argv if not a.startswith("resume=")]
    return "geoadapt " + shlex.join([*kept, "resume=true"])


def kept_run(args: argparse.Namespace, config: dict[str, Any] | None) -> tuple[Path, int] | None:
    """The partial folder of this command's run and its epochs done, when it holds a checkpoint to resume from."""
    from geoadapt.runs import partial_folder

    if config is None or args.command not in TRAINING_COMMANDS:
        return None
    last = partial_folder(config["out"]) / "last.pt"
    if not last.is_file():
        return None
    from geoadapt.serialization import safe_load

    try:
        state = safe_load(last, "resume state")
    except ValueError:  # a state it cannot read safely is nothing to resume from
        return None
    return last.parent, int(state["epoch"])
