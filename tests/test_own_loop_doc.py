"""Every python block of docs/own-loop.md runs as written, in order (later blocks use earlier names)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "own-loop.md"


def python_blocks(text: str) -> list[str]:
    """The page's fenced ``python`` blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.M | re.S)


def test_the_own_loop_page_runs(tmp_path, monkeypatch):
    pytest.importorskip("lightning.pytorch")
    blocks = python_blocks(PAGE.read_text())
    assert len(blocks) == 5
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        for i, code in enumerate(blocks):
            exec(compile(code, f"{PAGE.name} (python block {i})", "exec"), namespace)
    lines = printed.getvalue()
    weight = float(re.search(r"penalty weight (\S+)", lines).group(1))
    assert weight != 1.0 and namespace["reg"].balancer.balance_steps > 0  # the task loss set the weight
    assert float(re.search(r"SO\(3\) error (\S+)", lines).group(1)) > 0
    assert float(namespace["bounded"].multiplier) != 1.0 and int(namespace["mixed"].epoch) == 1
    assert namespace["trainer"].callback_metrics["SO3/weight"] == namespace["module"].reg.weight
    assert namespace["history"][-1]["train_penalty/Permutation()"] >= 0
    assert not list(tmp_path.iterdir())  # nothing written
