"""The acceptance test of exact resume: a smoke run stopped at random steps, 10 times each by
`kill -9`, SIGTERM and SIGINT (each stop followed by the same command, which resumes), ends
with a `metrics.jsonl` equal to an uninterrupted run's.

Slow (about 35 process starts); ``VJ_INTERRUPTS=N`` sets the stops per signal (10 by
default) and ``VJ_INTERRUPT_SEED`` the random steps, which the failure message repeats.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess

import pytest
from train_cli import run_train, start_and_signal

TOTAL_STEPS = 60
STOPS = int(os.environ.get("VJ_INTERRUPTS", "10"))
SEED = int(os.environ.get("VJ_INTERRUPT_SEED", str(random.randrange(10**6))))
# signal -> the exit status of a process it stopped (kill -9 leaves no say to the process)
EXPECTED_EXIT = {signal.SIGKILL: -signal.SIGKILL, signal.SIGTERM: 128 + signal.SIGTERM,
                 signal.SIGINT: 128 + signal.SIGINT}


def _overrides(data_dir) -> list[str]:
    return [f"--config.data_dir={data_dir}", f"--config.num_steps={TOTAL_STEPS}",
            "--config.checkpoint_every_steps=7", "--config.log_every_steps=1",
            "--config.eval_every_steps=25", "--config.model.dropout_rate=0.3"]


def _records(workdir) -> list[dict]:
    with open(workdir / "metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def _last_logged_step(workdir) -> int:
    try:
        with open(workdir / "metrics.jsonl") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            return json.loads(line)["step"]
        except (ValueError, KeyError):  # a line being written
            continue
    return 0


def _stop_at(workdir, overrides, sig: signal.Signals, step: int) -> int:
    """Starts the run, sends `sig` once it has logged `step` (or, if an earlier stop got
    there already, the step after that stop), returns its exit status."""
    step = max(step, _last_logged_step(workdir) + 1)
    proc = start_and_signal(workdir, *overrides, sig=sig, timeout=600,
                            ready=lambda: _last_logged_step(workdir) >= step,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = proc.communicate(timeout=300)
    assert "Traceback" not in err, err[-3000:]
    return proc.returncode


@pytest.fixture(scope="module")
def reference(tmp_path_factory, digits_data_dir):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    run_train(workdir, *_overrides(digits_data_dir))
    return _records(workdir)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=lambda s: s.name)
def test_stopped_at_random_steps_resumes_to_the_uninterrupted_metrics(
        tmp_path, digits_data_dir, reference, sig):
    rng = random.Random(f"{SEED}-{sig.name}")
    steps = sorted(rng.sample(range(1, TOTAL_STEPS), STOPS))
    where = f"{sig.name} at steps {steps} (VJ_INTERRUPT_SEED={SEED})"
    overrides = _overrides(digits_data_dir)
    for step in steps:
        code = _stop_at(tmp_path, overrides, sig, step)
        # 0: the run ended on its own before the signal (only possible near the end).
        assert code in (EXPECTED_EXIT[sig], 0), f"{where}: exit {code} at step {step}"
    run_train(tmp_path, *overrides)
    assert _records(tmp_path) == reference, where
