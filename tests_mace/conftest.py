"""The MACE tests run in their own environment (``.venv-mace``: mace-torch pins e3nn 0.4.4, sevenn needs >= 0.5);
``make test`` builds it and runs them after the main suite. Here mace-torch must be importable: a missing one is an
error, never a skip."""

from __future__ import annotations

import mace  # noqa: F401  (fails the collection when mace-torch is missing)
