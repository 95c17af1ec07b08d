"""launch.local drops Gloo's C++ connection lines of a multi-process CPU run (one per device,
written straight to the file descriptor) unless the command asks for library logs with
``--verbosity``; checked on a real 2-process localhost run with a cross-process collective."""

import io
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
    # 2 processes x 4 devices: each device's rank reports its connection. Gloo's threads
    # can print two reports on one line, so reports are counted, not lines.
    assert output.count("[Gloo] Rank") == (8 if verbosity else 0), output
    assert output.count("connected peer ranks is :") == (8 if verbosity else 0), output
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


def test_interleaved_pieces_leave_nothing_behind(capsys):
    """Gloo's threads write each report piece by piece; lines seen in CI runs, where pieces of
    several reports shared a line or a piece's number was left alone, are all dropped, and
    the program's own lines, numbers included, are kept."""
    lines = [b"[Gloo] Rank 1 is connected to 7 peer ranks. [Gloo] Rank 0 is connected to 7 "
             b"peer ranks. Expected number of connected peer ranks is : 7\n",
             b"Expected number of connected peer ranks is : 7\n",
             b"Expected number of connected peer ranks is : [Gloo] Rank 76[Gloo] Rank 5 is "
             b"connected to 7 peer ranks. Expected number of connected peer ranks is : 7\n",
             b" is connected to \n",
             b"77\n",
             b"\n",
             b" peer ranks. Expected number of connected peer ranks is : 7\n",
             b"step 1: loss=0.5\n",
             b"77\n",
             b"\n",
             b"Expected number of connected peer ranks is : 7 (not a Gloo line)\n"]
    local._pump(io.BytesIO(b"".join(lines)), "[p0] ", "stdout", local.GlooLines())
    assert capsys.readouterr().out.splitlines() == [
        "[p0] step 1: loss=0.5",
        "[p0] 77",
        "[p0] ",
        "[p0] Expected number of connected peer ranks is : 7 (not a Gloo line)"]
