"""A run's console: third-party noise a user cannot act on is filtered (``--verbosity``
brings it back), and a compact block at the start says devices and mesh, dataset sizes,
parameter count and where outputs go."""

from __future__ import annotations

import logging

import pytest
from absl import logging as absl_logging
from train_cli import run_train

from vision_jax.quiet import quiet_third_party

TFDS_BANNER = "Downloading and preparing dataset"


def test_tfds_opencv_warning_is_dropped_and_others_kept(caplog):
    quiet_third_party()
    with caplog.at_level(logging.WARNING, logger="absl"):
        absl_logging.warning("OpenCV is not installed. We recommend using OpenCV because ...")
        absl_logging.warning("Variant folder /d/x/1.0.0 has no dataset_info.json")
        absl_logging.warning("a warning of our own")
    assert [r.getMessage() for r in caplog.records] == ["a warning of our own"]


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory):
    """A smoke run that prepares its built-in dataset in a fresh data dir."""
    root = tmp_path_factory.mktemp("quiet")
    result = run_train(root / "w", f"--config.data_dir={root / 'data'}", "--config.num_steps=2")
    return root, result


def test_preparing_built_in_data_prints_one_line_not_tfds_noise(fresh_run):
    _, result = fresh_run
    console = result.stdout + result.stderr
    assert TFDS_BANNER not in console and "dataset_info.json" not in console
    assert "Generating train examples" not in console
    assert console.count("preparing dataset vision_jax_digits in ") == 1


def test_the_start_block_says_devices_data_model_and_outputs(fresh_run):
    root, result = fresh_run
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("devices  "))
    block = lines[start:start + 5]
    assert block[0].startswith("devices  1 x cpu (cpu); mesh data=1, fsdp=1; strategy jit")
    assert block[1].startswith("data     builtin:digits: train 4,000, test 1,000; batch 32")
    # seed_cnn on 28x28x1 with 10 classes, counted by flax init outside the run.
    assert block[2] == ("model    seed_cnn, task classification: 104,202 parameters; "
                        "compute float32")
    assert block[3].startswith("length   2 steps")
    assert block[4].startswith(f"outputs  {root / 'w'} ")


def test_verbosity_brings_the_tfds_messages_back(tmp_path):
    result = run_train(tmp_path / "w", f"--config.data_dir={tmp_path / 'data'}",
                       "--config.num_steps=1", "--verbosity=0")
    assert TFDS_BANNER in result.stdout + result.stderr
