"""Bad configs fail with one line naming the field and the fix, before any
compilation (checked with JAX_LOG_COMPILES, which logs every compilation)."""

from __future__ import annotations

import pytest
from train_cli import run_train

COMPILE_LOG = "Compiling"


def _fail(tmp_path, *overrides, devices=1, config="configs/mnist_cnn.py:smoke"):
    result = run_train(tmp_path / "w", *overrides, devices=devices, config=config,
                       env_extra={"JAX_LOG_COMPILES": "1"}, check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    assert COMPILE_LOG not in result.stderr
    return lines[0]


def test_a_valid_run_does_log_compilations(tmp_path, digits_data_dir):
    """The positive control for the checks below: compilation is visible."""
    result = run_train(tmp_path / "w", f"--config.data_dir={digits_data_dir}",
                       "--config.num_steps=1", env_extra={"JAX_LOG_COMPILES": "1"})
    assert COMPILE_LOG in result.stderr


@pytest.mark.parametrize("override, expected", [
    ("--config.batchsize=32", "config.batchsize is not a known field; did you mean "
                              "config.batch_size?"),
    ("--config.optimizer.nme=sgd", "did you mean config.optimizer.name?"),
    ("--config.batch_size=abc", "config.batch_size"),
    ("--config.model_name=resnet9", "config.model_name='resnet9' is unknown"),
    ("--config.optimizer.name=lion", "config.optimizer.name='lion' is unknown"),
    ("--config.dataset=builtin:nope", "config.dataset"),
    ("--config.dataset=folder:/no/such/dir", "config.dataset"),
    ("--config.num_classes=7", "--config.num_classes=10"),
    ("--config.image_size=4", "config.image_size=4"),
    ("--config.mesh.fsdp=3", "config.mesh"),
])
def test_bad_field_is_one_line_error(tmp_path, digits_data_dir, override, expected):
    message = _fail(tmp_path, f"--config.data_dir={digits_data_dir}", override)
    assert expected in message


def test_batch_that_does_not_divide_the_devices(tmp_path, digits_data_dir):
    message = _fail(tmp_path, f"--config.data_dir={digits_data_dir}", "--config.batch_size=12",
                    devices=8)
    assert "config.batch_size=12" in message and "multiple of 8" in message
    assert "--config.batch_size=8" in message


def test_catalog_dataset_that_is_not_prepared(tmp_path):
    message = _fail(tmp_path, f"--config.data_dir={tmp_path / 'missing'}",
                    "--config.dataset=tfds:mnist")
    assert "config.data_dir" in message and "does not exist" in message
    (tmp_path / "empty").mkdir()
    message = _fail(tmp_path, f"--config.data_dir={tmp_path / 'empty'}",
                    "--config.dataset=tfds:mnist")
    assert "mnist" in message and "vision_jax.data.prepare" in message
