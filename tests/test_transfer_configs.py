"""The transfer experiment's configs as a user runs them: `python -m vision_jax.train` on
`configs/transfer_source.py:smoke`, then `configs/transfer_target.py:two_phase,smoke` starting
from that workdir; a bad ``config.init_from.path`` is ``error: <one line>`` and exit 2.
"""

from __future__ import annotations

import json

import pytest
from train_cli import run_train


@pytest.mark.slow  # three trainings; tests/test_transfer_train.py covers init_from and phases
def test_source_then_two_phase_target_from_its_workdir(tmp_path, digits_data_dir):
    source, target = tmp_path / "source", tmp_path / "target"
    run_train(source, f"--config.data_dir={digits_data_dir}",
              config="configs/transfer_source.py:smoke")
    result = run_train(target, f"--config.data_dir={digits_data_dir}",
                       f"--config.init_from.path={source}",
                       config="configs/transfer_target.py:two_phase,smoke")
    assert f"init_from {source}: loaded 6 tensors; skipped: params/classifier/" in result.stdout
    with open(target / "init_from.json") as f:
        report = json.load(f)
    assert report["format"] == "checkpoint" and len(report["loaded"]) == 6
    assert report["skipped"] == ["params/classifier/bias", "params/classifier/kernel"]
    steps = [json.loads(line)["step"] for line in open(target / "metrics.jsonl")]
    assert max(steps) == 12  # the smoke length


def test_a_missing_init_from_path_is_one_line_and_exit_2(tmp_path, digits_data_dir):
    result = run_train(tmp_path / "target", f"--config.data_dir={digits_data_dir}",
                       f"--config.init_from.path={tmp_path / 'nowhere'}",
                       config="configs/transfer_target.py:finetune,smoke", check=False)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last == (f"error: config.init_from.path='{tmp_path / 'nowhere'}' does not exist; "
                    "give a weights file or a training workdir")
