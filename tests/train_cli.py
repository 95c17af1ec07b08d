"""Running `python -m vision_jax.train` as a user would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from launch.local import flags_without_device_count

REPO = Path(__file__).resolve().parents[1]


def cpu_env(devices: int = 1) -> dict[str, str]:
    """A subprocess environment with `devices` simulated CPU devices."""
    env = dict(os.environ)
    env["JAX_PLATFORMS"] = "cpu"
    # The suite's own flags (tests/conftest.py) reach every subprocess; a device count only
    # the ones that ask.
    env["XLA_FLAGS"] = " ".join([*flags_without_device_count(env),
                                 f"--xla_force_host_platform_device_count={devices}"])
    env["PYTHONUNBUFFERED"] = "1"
    return env


def train_command(workdir, *overrides: str, config: str = "configs/mnist_cnn.py:smoke",
                  module: str = "vision_jax.train") -> list[str]:
    return [sys.executable, "-m", module, f"--config={REPO / config}", f"--workdir={workdir}",
            "--config.progress_bar=False", *overrides]


def run_train(workdir, *overrides: str, devices: int = 1, env_extra: dict | None = None,
              config: str = "configs/mnist_cnn.py:smoke", timeout: int = 600,
              check: bool = True) -> subprocess.CompletedProcess:
    env = cpu_env(devices)
    env.update(env_extra or {})
    result = subprocess.run(train_command(workdir, *overrides, config=config), cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"train failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


def start_and_signal(workdir, *overrides: str, sig: int,
                     ready: Callable[[], bool] | None = None, devices: int = 1,
                     config: str = "configs/mnist_cnn.py:smoke", timeout: float = 300,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT) -> subprocess.Popen:
    """Starts a training run, waits until `ready()` (default: its metrics.jsonl exists), then
    sends `sig` unless the run already ended; returns the process (text pipes as given), for
    the caller to read and wait on. A run not ready within `timeout` seconds is killed and
    fails the test."""
    proc = subprocess.Popen(train_command(workdir, *overrides, config=config), cwd=REPO,
                            env=cpu_env(devices), stdout=stdout, stderr=stderr, text=True)
    ready = ready or (lambda: (Path(workdir) / "metrics.jsonl").exists())
    deadline = time.time() + timeout
    while proc.poll() is None and not ready():
        if time.time() > deadline:
            proc.kill()
            proc.communicate()
            raise AssertionError(f"the run in {workdir} was not ready within {timeout} s")
        time.sleep(0.005)
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc
