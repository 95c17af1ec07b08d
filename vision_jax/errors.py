"""Errors every layer may raise; this module imports nothing from vision_jax, so the lowest
layer (ops, data, models) can use them without importing upward."""

from __future__ import annotations


class ConfigError(ValueError):
    """A config that cannot run. The message is one line that names the field and the fix;
    entry points print it as ``error: <message>`` and exit with status 2."""


class StoppedBySignal(Exception):
    """A run that stopped early on a signal after saving its checkpoint. Entry points exit
    with ``128 + signum`` (143 for SIGTERM), as a process killed by it would, so a
    scheduler or the `launch.tpu_vm run` loop sees a preemption rather than success."""

    def __init__(self, signum: int, step: int):
        super().__init__(f"stopped at step {step} on signal {signum}")
        self.signum = int(signum)
        self.step = step

    @property
    def exit_code(self) -> int:
        return 128 + self.signum
