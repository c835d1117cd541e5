"""``make demo`` (``python -m geoadapt.demo``): SevenNet-0 adapted to a new level of theory with LoRA and replay,
its accuracy, forgetting and symmetry, then molecular dynamics with it (:mod:`geoadapt.demo.potential`).

``python -m geoadapt.demo molecules``: the molecular story, a coordinate-naive GNN adapted three ways
(:mod:`geoadapt.demo.molecules`); ``--report`` there: the equivariance of untrained models.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

STORIES = ("potential", "molecules")


def main(argv: list[str] | None = None) -> None:
    """Run a demo: the potential story (default) or the molecular one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("story", nargs="?", choices=STORIES, default="potential")
    parser.add_argument("--report", action="store_true", help="molecules: only the report of untrained models")
    parser.add_argument("--molecules", type=int, default=64, help="molecules in the report")
    parser.add_argument("--samples", type=int, default=8, help="group samples per molecule in the report")
    parser.add_argument("--quick", action="store_true", help="a tiny run (for tests)")
    # runs/ is not tracked: the demo never rewrites files of the repository.
    parser.add_argument("--out", type=Path, default=None, help="default runs/demo (runs/demo-molecules)")
    args = parser.parse_args(argv)
    if args.report and args.story != "molecules":
        parser.error("--report: expected the molecules story (python -m geoadapt.demo molecules --report)")
    if args.story == "molecules":
        from geoadapt.demo import molecules

        args.out = args.out or Path("runs/demo-molecules")
        molecules.run(args)
        return
    from geoadapt.demo.potential import story

    out = args.out or Path("runs/demo")
    start = time.perf_counter()
    story(out, quick=args.quick)
    print(f"\nwrote {out}/summary.json ({time.perf_counter() - start:.0f} s)")
