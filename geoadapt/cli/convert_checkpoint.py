"""``geoadapt convert-checkpoint``: rewrite a trusted checkpoint of an earlier format as plain data."""

from __future__ import annotations

from typing import Any

from geoadapt.errors import ConfigError


def run(config: dict[str, Any]) -> None:
    """Convert ``source`` to ``out`` (only with ``trust_code=true``: reading the old file runs its code)."""
    from geoadapt.checkpoints import convert_legacy

    if not config["trust_code"]:
        raise ConfigError(
            f"trust_code: expected true (converting unpickles {config['source']}, running any code it holds: "
            "do it only for a file you trust), got false"
        )
    print(f"wrote {convert_legacy(config['source'], config['out'])} (loads without running code)")
