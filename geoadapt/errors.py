"""Errors that geoadapt reports to a user in one line."""

from __future__ import annotations


class ConfigError(ValueError):
    """A configuration value that cannot be used: the message names the key, what was expected and what came."""
