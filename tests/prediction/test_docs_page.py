"""docs/how-to/predict.md: its command lines run as written (a quick pretraining), and the file they write has the
columns the page shows."""

from __future__ import annotations

import csv
import re

from tests.test_docs import code_blocks, find, run_commands


def test_the_command_line_block_writes_the_columns_the_page_shows(tmp_path, monkeypatch, capsys):
    (tmp_path / "new.csv").write_text("smiles\nCCO\nc1ccccc1O\nnot a molecule\nCC(=O)Nc1ccc(O)cc1\n")
    monkeypatch.chdir(tmp_path)
    outputs = run_commands(find("how-to/predict.md", "From the command line", "bash").code, tmp_path, capsys)
    assert "predicted 3 of 4 rows" in outputs[-1][1] and "1 could not be featurized" in outputs[-1][1]
    texts = [
        b.code for b in code_blocks("text") if (b.page, b.heading) == ("how-to/predict.md", "From the command line")
    ]
    shown = re.search(r"^row,.*$", texts[0], flags=re.M).group(0)
    rows = list(csv.reader((tmp_path / "predictions.csv").open()))
    assert ",".join(rows[0]) == shown and [r[0] for r in rows[1:]] == ["0", "1", "3"]
    failed = list(csv.DictReader((tmp_path / "predictions.failed.csv").open()))
    assert failed == [{"row": "2", "id": "", "smiles": "not a molecule", "reason": "parse"}]
