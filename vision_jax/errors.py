"""Errors every layer may raise; this module imports nothing from vision_jax, so the lowest
layer (ops, data, models) can use them without importing upward."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config that cannot run. The message is one line that names the field and the fix;
    entry points print it as ``error: <message>`` and exit with status 2."""
