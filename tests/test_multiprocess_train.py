"""Multi-process runs on this machine (`launch.local`, 2 processes x 4 simulated devices)
compute what one process with 8 devices computes; evaluation counts every example once
however the split divides over processes; a process killed mid-run ends the job with a
clear message and leaves checkpoints that restore and resume."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
from test_sharding import _final_state, _records
from train_cli import REPO, cpu_env, run_train, train_command

EVAL_SIZE = 37  # not a multiple of the global eval batch (16): the last batch is padded
# test_sharding's tiny ResNet with two stages (still a projection shortcut and five batch
# norms): compiling it in two processes at once is what this file's time goes to.
# ResNet-18's layout (2, 2, 2, 2 basic blocks, batch norm everywhere) at an eighth of the
# width, so two processes compile it in reasonable time.
NARROW_RESNET18 = """
from configs.cifar10_resnet18 import get_config as cifar_config

def get_config(arg=None):
    config = cifar_config("smoke")
    config.model.width = 8
    config.image_size = 16
    return config
"""


def _launch(*command: str, timeout: int = 600) -> subprocess.CompletedProcess:
    launcher = [sys.executable, "-m", "launch.local", "--processes", "2",
                "--devices-per-process", "4", "--", *command]
    return subprocess.run(launcher, cwd=REPO, env=cpu_env(1), capture_output=True, text=True,
                          timeout=timeout)


def _overrides(data_dir: str, *extra: str) -> list[str]:
    return [f"--config.data_dir={data_dir}", "--config.num_steps=4", "--config.batch_size=32",
            "--config.eval_batch_size=16", f"--config.eval_split=test[:{EVAL_SIZE}]",
            "--config.log_every_steps=2", "--config.eval_every_steps=4",
            "--config.checkpoint_every_steps=4", *extra]


def _evaluate_command(workdir) -> list[str]:
    return [sys.executable, "-m", "vision_jax.evaluate", f"--workdir={workdir}"]


def _json_line(text: str, prefix: str = "") -> dict:
    lines = [line[len(prefix):] for line in text.splitlines()
             if line.startswith(prefix + "{")]
    assert len(lines) == 1, text[-3000:]
    return json.loads(lines[0])


def _confusion(workdir, split: str) -> np.ndarray:
    from vision_jax.evaluate import file_prefix  # slice splits get bracket-free file names

    return np.loadtxt(workdir / f"{file_prefix(split)}_confusion_matrix.csv", delimiter=",",
                      dtype=np.int64)


@pytest.mark.parametrize("model", [
    "mnist",
    # Two processes compiling a ResNet at once take minutes on a 2-core CI machine; the
    # cross-device batch norm is covered fast in test_strategies (shard_map on 8 devices).
    pytest.param("resnet", marks=pytest.mark.slow),
])
def test_two_processes_of_four_devices_match_one_process_of_eight(tmp_path, digits_data_dir,
                                                                  model):
    config = "configs/mnist_cnn.py:smoke"
    # Dropout on: each process reads its own rows of every global batch, so the global batch
    # is row for row the single-process one and the per-row dropout masks fall alike.
    extra = ["--config.model.dropout_rate=0.3"]
    if model == "resnet":  # batch-norm statistics of the global batch, across processes
        config = tmp_path / "tiny_resnet.py"
        config.write_text(NARROW_RESNET18)
        # The smoke recipe's peak lr 0.1 blows this narrow net up by step 4 (eval loss ~11):
        # float-rounding differences then grow to 1e-1, in any two runs that sum in another
        # order. At lr 0.01 the training is stable, so the comparison tests the sharding.
        extra = ["--config.optimizer.learning_rate=0.01"]
    overrides = _overrides(digits_data_dir, *extra)
    one, two = tmp_path / "one", tmp_path / "two"
    run_train(one, *overrides, devices=8, config=config)
    result = _launch(*train_command(two, *overrides, config=config))
    assert result.returncode == 0, result.stderr[-4000:]

    a, b = _final_state(one), _final_state(two)
    assert int(a.step) == int(b.step) == 4
    for tree in ("params", "batch_stats"):
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5),
                     getattr(a, tree), getattr(b, tree))
    # Only process 0 writes the log: one record per step and split, as with one process.
    ra, rb = _records(one), _records(two)
    # Train metrics every 2 steps, eval at step 4: three records, none duplicated.
    assert [r["step"] for r in ra] == [r["step"] for r in rb] == [2, 4, 4]
    for x, y in zip(ra, rb, strict=True):
        assert x.keys() == y.keys()
        for key in x:
            assert x[key] == pytest.approx(y[key], rel=1e-4, abs=1e-5), key
    assert (two / "training_curves.png").exists()
    for workdir in (one, two):  # the report counts each of the 37 examples once
        assert _confusion(workdir, "eval").sum() == EVAL_SIZE


def _write_initial_checkpoint(workdir, data_dir: str) -> None:
    """A workdir as a run leaves it, holding the freshly initialised model (built here, in
    this process: cheaper than a training subprocess, and evaluation needs no training)."""
    from configs.mnist_cnn import get_config
    from vision_jax.training import loop

    config = get_config("smoke")
    config.data_dir, config.eval_batch_size, config.eval_split = (
        data_dir, 16, f"test[:{EVAL_SIZE}]")
    exp = loop.build_experiment(config, str(workdir))
    exp.checkpointer.save(loop.init_state(exp, jax.random.key(0)), {})
    exp.checkpointer.close()
    (workdir / "config.json").write_text(config.to_json_best_effort())


def test_eval_of_a_split_the_batch_does_not_divide_counts_each_example_once(
        tmp_path, digits_data_dir):
    workdir = tmp_path / "run"
    _write_initial_checkpoint(workdir, digits_data_dir)
    split = f"test[:{EVAL_SIZE}]"

    single = subprocess.run(_evaluate_command(workdir), cwd=REPO, env=cpu_env(8),
                            capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-4000:]
    one = _json_line(single.stdout)
    conf_one = _confusion(workdir, split)
    double = _launch(*_evaluate_command(workdir))
    assert double.returncode == 0, double.stderr[-4000:]
    two = _json_line(double.stdout, "[p0] ")
    conf_two = _confusion(workdir, split)

    assert conf_one.sum() == EVAL_SIZE  # 3 batches of 16 = 48 slots, 11 of them padding
    np.testing.assert_array_equal(conf_one, conf_two)
    assert one.keys() == two.keys() and f"{split}/accuracy" in one
    for key in one:
        if key.endswith("/loss"):  # a float sum taken in another order
            assert one[key] == pytest.approx(two[key], rel=1e-6), key
        else:  # counts of correct examples over the same 37
            assert one[key] == two[key], key
    # The accuracy is that of the confusion matrix: correct / 37, padding excluded.
    assert one[f"{split}/accuracy"] == pytest.approx(np.trace(conf_one) / EVAL_SIZE)


def _finished_steps(directory) -> list[int]:
    # Orbax writes a step under a temporary name and renames it when every process is done.
    if not directory.exists():
        return []
    return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


@pytest.mark.slow  # a minute of two processes on 2 cores
def test_killing_one_process_ends_the_job_and_the_checkpoint_resumes(tmp_path,
                                                                     digits_data_dir):
    workdir = tmp_path / "run"
    overrides = [f"--config.data_dir={digits_data_dir}", "--config.num_steps=2000",
                 "--config.batch_size=32", "--config.eval_batch_size=16",
                 f"--config.eval_split=test[:{EVAL_SIZE}]", "--config.log_every_steps=2",
                 "--config.eval_every_steps=100000", "--config.checkpoint_every_steps=2",
                 "--config.schedule.name=constant"]
    launcher = subprocess.Popen(
        [sys.executable, "-m", "launch.local", "--processes", "2", "--devices-per-process",
         "4", "--grace-period", "3", "--", *train_command(workdir, *overrides)],
        cwd=REPO, env=cpu_env(1), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        pids = {}
        while len(pids) < 2:
            line = launcher.stderr.readline()
            assert line, "the launcher ended before starting its processes"
            match = re.search(r"started process (\d) of 2 \(pid (\d+)\)", line)
            if match:
                pids[int(match.group(1))] = int(match.group(2))
        deadline = time.monotonic() + 400
        while not _finished_steps(workdir / "checkpoints"):
            assert launcher.poll() is None, launcher.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.2)
        os.kill(pids[1], signal.SIGKILL)
        killed_at = time.monotonic()
        _, err = launcher.communicate(timeout=120)
        elapsed = time.monotonic() - killed_at
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode != 0
    assert elapsed < 60, f"the job took {elapsed:.0f}s to end after a process died"
    assert "FAILED: process 1 of 2 was killed by SIGKILL" in err, err[-3000:]

    # Whatever was in flight, the latest finished checkpoint restores ...
    steps = _finished_steps(workdir / "checkpoints")
    state = _final_state(workdir)
    assert int(state.step) == steps[-1] >= 2
    # ... and the same run resumes from it (here on one process, to two more steps).
    target = steps[-1] + 2
    result = run_train(workdir, *overrides[:1], f"--config.num_steps={target}", *overrides[2:],
                       devices=8)
    assert f"resuming from the checkpoint at step {steps[-1]}" in result.stdout
    assert int(_final_state(workdir).step) == target
