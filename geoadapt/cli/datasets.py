"""``geoadapt datasets``: the dataset cards, and whether their files are present under the data root."""

from __future__ import annotations

from typing import Any


def run(config: dict[str, Any]) -> None:
    """Print the data root, then one row per card: task, metric, size, files present, title."""
    from geoadapt.data import card_names, files_present, read_card
    from geoadapt.data.cache import data_root
    from geoadapt.report import table

    rows = []
    for name in card_names():
        card = read_card(name)
        present = "yes" if files_present(card) else "no"
        rows.append([name, card["task"], card["metric"], card["expected_size"], present, card["title"]])
    print(f"data root: {data_root()}\n")
    print(table(["name", "task", "metric", "size", "files present", "title"], rows))
