"""Ctrl-C (SIGINT) stops a run like SIGTERM: the step in flight finishes, a checkpoint is
written, and the process exits with 130 and no traceback; a second Ctrl-C exits at once."""

from __future__ import annotations

import os
import signal

import pytest
from train_cli import start_and_signal


def _finished_steps(workdir) -> list[int]:
    ckpt = workdir / "checkpoints"
    return sorted(int(d) for d in os.listdir(ckpt) if d.isdigit()
                  and (ckpt / d / "commit_success.txt").exists()) if ckpt.is_dir() else []


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_saves_and_exits_130_without_a_traceback(tmp_path, digits_data_dir, presses):
    overrides = [f"--config.data_dir={digits_data_dir}", "--config.num_steps=100000",
                 "--config.checkpoint_every_steps=100000", "--config.log_every_steps=5",
                 "--config.eval_every_steps=100000"]
    proc = start_and_signal(tmp_path, *overrides, sig=signal.SIGINT)
    seen = []
    if presses == 2:
        # Two signals before Python runs its handler count once: press again once the first
        # is acknowledged (the checkpoint is then still being written).
        for line in proc.stdout:
            seen.append(line)
            if "SIGINT received" in line:
                break
        second_in_time = proc.poll() is None
        proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    out = "".join(seen) + out
    assert proc.returncode == 130, out[-3000:]
    assert "Traceback" not in out and "KeyboardInterrupt" not in out, out[-3000:]
    assert "SIGINT received: saving a checkpoint" in out
    if presses == 1:
        steps = _finished_steps(tmp_path)
        assert len(steps) == 1 and 5 <= steps[0] < 100000, out[-3000:]
    elif second_in_time:
        # It lands while the step in flight or the checkpoint run (exit at once), or after
        # the checkpoint was written (nothing left to interrupt); never a traceback.
        assert "second Ctrl-C: exiting now" in out or _finished_steps(tmp_path), out[-3000:]
