"""The training-throughput benchmark: a --quick run's records, its FLOP count, and the
PyTorch twins' fidelity to our models (when PyTorch happens to be installed)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import records, train_throughput
from configs.cifar10_resnet18 import get_config as cifar_config
from configs.mnist_cnn import get_config as mnist_config
from vision_jax.summary import summarize

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # a benchmark run (every kernel choice timed): a minute on 2 cores
def test_quick_run_times_every_choice_and_skips_the_unusable(tmp_path, digits_data_dir):
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.train_throughput",
         f"--config={ROOT / 'configs/mnist_cnn.py'}", f"--config.data_dir={digits_data_dir}",
         "--quick", "--notorch", f"--out={tmp_path}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    document = json.loads((tmp_path / "train_throughput_seed_cnn_cpu.json").read_text())
    assert document["meta"]["batch_size"] == 32  # --quick caps the config's 64
    assert document["meta"]["input_pipeline_images_per_s"] > 0
    by_impl = {r["impl"]: r for r in document["records"]}
    assert list(by_impl) == ["lax:lax", "auto:auto", train_throughput.DATA_FED]
    for row in document["records"]:
        assert list(row) == list(records.RECORD_FIELDS)
        assert row["suite"] == "train_throughput" and row["op"] == "seed_cnn"
        assert math.isfinite(row["median_s"]) and row["median_s"] > 0
        assert row["ratio_vs_lax"] == pytest.approx(
            by_impl["lax:lax"]["median_s"] / row["median_s"])
    for row in document["rows"]:
        assert row["images/s"] == pytest.approx(32 / by_impl[row["choice"]]["median_s"])
    markdown = (tmp_path / "train_throughput_seed_cnn_cpu.md").read_text()
    assert "| lax:lax |" in markdown and "Input pipeline alone" in markdown


def test_train_flops_of_the_mnist_convnet_match_the_layer_arithmetic():
    config = mnist_config()
    # 26x26x32 outputs of 3x3x1, 11x11x64 of 3x3x32, 3x3x128 of 3x3x64, then 1152 -> 10.
    macs = 26 * 26 * 32 * 9 + 11 * 11 * 64 * 9 * 32 + 3 * 3 * 128 * 9 * 64 + 1152 * 10
    assert train_throughput.train_flops_per_image(config, channels=1) == 3 * 2 * macs


@pytest.mark.parametrize("make_config", [
    lambda: mnist_config(),
    lambda: _tiny_cifar_resnet(),
])
def test_pytorch_twins_have_our_models_parameter_counts(make_config):
    pytest.importorskip("torch")
    from benchmarks import torch_twins

    config = make_config()
    channels = 1 if config.model_name == "seed_cnn" else 3
    twin = torch_twins.build_twin(config, channels)
    ours = summarize(config.model_name, config.num_classes, config.image_size, channels,
                     **config.model.to_dict())
    assert torch_twins.parameter_count(twin) == ours["params"]


def _tiny_cifar_resnet():
    config = cifar_config()
    config.model.width = 8
    return config
