"""launch.local drops Gloo's C++ connection lines of a multi-process CPU run (one per device,
written straight to the file descriptor) unless the command asks for library logs with
``--verbosity``; checked on a real 2-process localhost run with a cross-process collective."""

import subprocess
import sys

import numpy as np
import pytest
from test_launch_local import GLOBAL_SUM_PROBE, REPO_ROOT, write_script

from launch import local


@pytest.mark.parametrize("verbosity", [[], ["--verbosity=1"]], ids=["quiet", "verbose"])
def test_gloo_lines_are_dropped_unless_verbosity_asks(tmp_path, verbosity):
    script = write_script(tmp_path, "probe.py", GLOBAL_SUM_PROBE)
    result = subprocess.run(
        [sys.executable, "-m", "launch.local", "--processes", "2", "--devices-per-process", "4",
         "--", sys.executable, script, *verbosity],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout + result.stderr
    gloo = [line for line in output.splitlines() if "[Gloo]" in line]
    # 2 processes x 4 devices: each device's rank reports its connection.
    assert len(gloo) == (8 if verbosity else 0), output
    expected = float(np.arange(2 * 4 * 3).sum())
    assert f"[p0] GLOBAL_SUM {expected} main=True" in result.stdout.splitlines()
    assert f"[p1] GLOBAL_SUM {expected} main=False" in result.stdout.splitlines()


@pytest.mark.parametrize("command, asks", [
    (["python", "-m", "vision_jax.train", "--verbosity=1"], True),
    (["python", "-m", "vision_jax.train", "--verbosity", "0"], True),
    (["python", "-m", "vision_jax.train", "-v", "1"], True),
    (["python", "-m", "vision_jax.train", "-v=2"], True),
    (["python", "-m", "vision_jax.train", "--config.verbose=1", "--workdir=-v"], False),
    (["python", "-m", "vision_jax.train"], False),
])
def test_which_commands_ask_for_library_logs(command, asks):
    assert local.asks_for_library_logs(command) is asks
