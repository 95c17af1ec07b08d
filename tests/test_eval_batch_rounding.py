"""An eval batch that does not divide over the mesh is rounded up (evaluation pads and
masks), with a log line saying so; the train batch must still divide."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from train_cli import REPO, cpu_env

from configs import mnist_cnn
from vision_jax.errors import ConfigError
from vision_jax.training.validate import validate_config


def test_eval_batch_500_on_8_devices_is_rounded_up_to_504(caplog):
    config = mnist_cnn.get_config("smoke")  # eval_batch_size=500, as in the README
    with caplog.at_level(logging.WARNING):
        run = validate_config(config, device_count=8, process_count=2)
    assert run.data.eval_batch_size == 504
    assert config.eval_batch_size == 504  # what the data layer reads and config.json records
    assert "config.eval_batch_size=500 does not divide over the 8-way data-parallel mesh: " \
        "rounded up to 504" in caplog.text


def test_an_eval_batch_that_divides_is_kept(caplog):
    config = mnist_cnn.get_config("smoke")
    with caplog.at_level(logging.WARNING):
        assert validate_config(config, device_count=4, process_count=1).data.eval_batch_size \
            == 500
    assert "rounded up" not in caplog.text


def test_the_train_batch_must_still_divide():
    config = mnist_cnn.get_config("smoke")
    config.batch_size = 30
    with pytest.raises(ConfigError, match=r"config\.batch_size=30 does not divide"):
        validate_config(config, device_count=8, process_count=1)


@pytest.mark.slow
def test_the_readme_launch_local_example_runs(tmp_path, digits_data_dir):
    """README: `launch.local --processes 2 --devices-per-process 4 -- python -m
    vision_jax.train --config configs/mnist_cnn.py:smoke --workdir /tmp/mp` (eval batch 500
    on 8 devices); its local workdir in a 2-process run draws the shared-storage warning."""
    command = [sys.executable, "-m", "launch.local", "--processes", "2",
               "--devices-per-process", "4", "--", sys.executable, "-m", "vision_jax.train",
               "--config", "configs/mnist_cnn.py:smoke", "--workdir", str(tmp_path / "mp"),
               f"--config.data_dir={digits_data_dir}"]
    result = subprocess.run(command, cwd=REPO, env=cpu_env(1), capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "config.eval_batch_size=500 does not divide over the 8-way data-parallel mesh: " \
        "rounded up to 504" in result.stderr
    assert "is a local path in a 2-process run" in result.stderr
    assert "shares (gs://bucket/run)" in result.stderr
    config = json.loads((tmp_path / "mp" / "config.json").read_text())
    assert config["eval_batch_size"] == 504
