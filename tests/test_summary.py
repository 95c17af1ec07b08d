"""`vision_jax.summary`: MACs against the papers and independent arithmetic; the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax.numpy as jnp
import pytest

from vision_jax import models
from vision_jax.models import layers
from vision_jax.summary import format_table, summarize, summarize_config

REPO = Path(__file__).resolve().parents[1]
# He et al. (2015), Table 1: block type, blocks per stage, and the "FLOPs" row (multiply-adds).
RESNETS = {
    "resnet18": ("basic", (2, 2, 2, 2), 1.8e9),
    "resnet34": ("basic", (3, 4, 6, 3), 3.6e9),
    "resnet50": ("bottleneck", (3, 4, 6, 3), 3.8e9),
    "resnet101": ("bottleneck", (3, 4, 23, 3), 7.6e9),
    "resnet152": ("bottleneck", (3, 8, 36, 3), 11.3e9),
}
# torchvision's published "GFLOPS" (in fact multiply-accumulates) for its v1.5 ResNets and VGGs.
TORCHVISION_GMACS = {
    "resnet18": 1.81, "resnet34": 3.66, "resnet50": 4.09, "resnet101": 7.80, "resnet152": 11.51,
    "vgg11": 7.61, "vgg13": 11.31, "vgg16": 15.47, "vgg19": 19.63,
}
# Simonyan & Zisserman (2015), Table 1.
VGGS = {
    "vgg11": "64 M 128 M 256 256 M 512 512 M 512 512 M",
    "vgg13": "64 64 M 128 128 M 256 256 M 512 512 M 512 512 M",
    "vgg16": "64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M",
    "vgg19": "64 64 M 128 128 M 256 256 256 256 M 512 512 512 512 M 512 512 512 512 M",
}


def conv_macs(out_size: int, k: int, c_in: int, c_out: int) -> int:
    return out_size * out_size * k * k * c_in * c_out


def resnet_reference_macs(block: str, stages: tuple[int, ...], v1_5: bool = True,
                          num_classes: int = 1000) -> int:
    macs = conv_macs(112, 7, 3, 64)  # stem 7x7/2 on 224; the 3x3/2 max-pool gives 56
    size, channels = 56, 64
    for stage, blocks in enumerate(stages):
        width = 64 * 2**stage
        for index in range(blocks):
            stride = 2 if stage > 0 and index == 0 else 1
            out_size = size // stride
            if block == "basic":
                out = width
                macs += conv_macs(out_size, 3, channels, width) + conv_macs(out_size, 3, width,
                                                                            width)
            else:
                out = 4 * width
                # v1.5 strides the 3x3 conv, so the first 1x1 still runs at the input size.
                macs += conv_macs(size if v1_5 else out_size, 1, channels, width)
                macs += conv_macs(out_size, 3, width, width)
                macs += conv_macs(out_size, 1, width, out)
            if stride != 1 or channels != out:
                macs += conv_macs(out_size, 1, channels, out)
            size, channels = out_size, out
    return macs + channels * num_classes


def vgg_reference_macs(layout: str, num_classes: int = 1000) -> int:
    macs, size, channels = 0, 224, 3
    for token in layout.split():
        if token == "M":
            size //= 2
        else:
            macs += conv_macs(size, 3, channels, int(token))
            channels = int(token)
    return macs + size * size * channels * 4096 + 4096 * 4096 + 4096 * num_classes


@pytest.fixture(scope="module")
def resnet_summaries():
    return {name: summarize(name) for name in RESNETS}


@pytest.mark.parametrize("name", sorted(RESNETS))
def test_resnet_macs_within_ten_percent_of_the_paper(name, resnet_summaries):
    summary = resnet_summaries[name]
    paper = RESNETS[name][2]
    assert abs(summary["macs"] - paper) / paper < 0.10
    assert summary["flops"] == 2 * summary["macs"]


@pytest.mark.parametrize("name", sorted(RESNETS))
def test_resnet_macs_equal_layer_by_layer_arithmetic(name, resnet_summaries):
    block, stages, _ = RESNETS[name]
    summary = resnet_summaries[name]
    assert summary["macs"] == resnet_reference_macs(block, stages)
    assert summary["macs"] / 1e9 == pytest.approx(TORCHVISION_GMACS[name], abs=0.006)
    if block == "bottleneck":  # and not the v1 count: the stride sits on the 3x3 conv
        assert summary["macs"] != resnet_reference_macs(block, stages, v1_5=False)
    assert summary["macs"] == sum(row["macs"] for row in summary["layers"])
    assert summary["params"] == sum(row["params"] for row in summary["layers"])


def test_resnet50_v1_5_shapes(resnet_summaries):
    shapes = {row["name"]: row["shape"] for row in resnet_summaries["resnet50"]["layers"]}
    assert shapes["stem_conv"] == [112, 112, 64]
    assert shapes["stem_pool"] == [56, 56, 64]
    assert shapes["stage2_block1/conv1"] == [56, 56, 128]  # 1x1 reduce, not strided
    assert shapes["stage2_block1/conv2"] == [28, 28, 128]  # the strided 3x3
    assert shapes["stage2_block1/proj_conv"] == [28, 28, 512]
    assert shapes["classifier"] == [1000]
    assert resnet_summaries["resnet50"]["params"] == 25_557_032  # torchvision's count


@pytest.mark.parametrize("name", sorted(VGGS))
def test_vgg_macs(name):
    summary = summarize(name)
    assert summary["macs"] == vgg_reference_macs(VGGS[name])
    assert summary["macs"] / 1e9 == pytest.approx(TORCHVISION_GMACS[name], abs=0.006)
    assert "batch_stats" in summary and summary["batch_stats"] == 0


def test_seed_cnn_defaults_to_mnist_input():
    summary = summarize("seed_cnn", num_classes=10)
    assert summary["input_shape"] == [28, 28, 1]
    expected = (conv_macs(26, 3, 1, 32) + conv_macs(11, 3, 32, 64) + conv_macs(3, 3, 64, 128)
                + 3 * 3 * 128 * 10)
    assert summary["macs"] == expected == 3_100_032
    assert summary["params"] == 104_202
    assert [row["shape"] for row in summary["layers"] if row["type"] == "Conv"] == [
        [26, 26, 32], [11, 11, 64], [3, 3, 128]]


class _GroupedNet(nn.Module):
    """A registered-for-the-test model with a grouped, strided conv."""

    num_classes: int

    @nn.compact
    def __call__(self, images, *, train: bool = False):
        x = layers.Conv(32, (3, 3), strides=(2, 2), padding="SAME", groups=4)(images)
        return nn.Dense(self.num_classes)(jnp.mean(x, axis=(1, 2)))


@pytest.fixture
def grouped_test_net():
    models.register("_grouped_test_net", _GroupedNet)
    yield "_grouped_test_net"
    models.MODELS.remove("_grouped_test_net")


def test_grouped_conv_macs(grouped_test_net):
    summary = summarize(grouped_test_net, num_classes=5, image_size=20, channels=8)
    # out 10x10, 3x3 kernel, c_in/groups = 8/4 = 2, c_out = 32; then dense 32 -> 5.
    assert summary["macs"] == 10 * 10 * 3 * 3 * (8 // 4) * 32 + 32 * 5
    assert summary["params"] == 3 * 3 * 2 * 32 + 32 + 32 * 5 + 5


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vision_jax.summary", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, check=False)


def test_cli_json_is_one_object_matching_the_function():
    result = _run_cli("--model", "resnet18", "--num_classes", "10", "--image_size", "64", "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed == summarize("resnet18", num_classes=10, image_size=64)
    assert printed["flops"] == 2 * printed["macs"]
    assert printed["input_shape"] == [64, 64, 3]
    for row in printed["layers"]:
        assert set(row) >= {"name", "shape", "params", "macs"}


def test_cli_table():
    result = _run_cli("--model", "seed_cnn", "--num_classes", "10")
    assert result.returncode == 0, result.stderr
    assert "conv3" in result.stdout and "classifier" in result.stdout
    assert "104,202" in result.stdout and "3,100,032" in result.stdout


@pytest.mark.parametrize("args, field", [(("--model", "resnet51"), "--model"),
                                         (("--model", "vgg11", "--image_size", "0"),
                                          "--image_size"),
                                         (("--model", "vgg11", "--image_size", "16"),
                                          "image_size")])
def test_cli_bad_input_is_one_line(args, field):
    result = _run_cli(*args)
    assert result.returncode != 0
    message = result.stderr.strip().splitlines()
    assert len(message) == 1 and field in message[0]


def test_config_shows_its_model_at_its_classes_and_size():
    # Was: no --config, and `--model seed_cnn` assumes 1000 classes (1,245,672 parameters).
    result = _run_cli("--config", "configs/mnist_cnn.py", "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["model"] == "seed_cnn" and printed["num_classes"] == 10
    assert printed["input_shape"] == [28, 28, 1]
    assert printed["total_params"] == printed["params"] == 104_202


def test_config_overrides_and_args_apply():
    result = _run_cli("--config", "configs/cifar10_resnet18.py", "--config.num_classes=7",
                      "--json")
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["model"] == "resnet18" and printed["num_classes"] == 7
    assert printed["input_shape"] == [32, 32, 3]


def test_keras_style_totals():
    from configs import cifar10_resnet18

    summary = summarize_config(cifar10_resnet18.get_config())
    # batch norm: a mean and a variance per channel of every BatchNorm layer
    assert summary["non_trainable_params"] == summary["batch_stats"] > 0
    assert summary["trainable_params"] == summary["params"]
    assert summary["total_params"] == summary["params"] + summary["batch_stats"]
    assert summary["size_mb"] == summary["total_params"] * 4 / 2**20  # float32 variables
    table = format_table(summary)
    assert f"Total params:         {summary['total_params']:,}" in table
    assert f"({summary['size_mb']:.2f} MB)" in table
    assert f"Non-trainable params: {summary['batch_stats']:,}" in table


def test_workdir_shows_the_runs_model(tmp_path):
    from configs import mnist_cnn

    config = mnist_cnn.get_config()
    config.image_size = 32  # what the run was trained at, not the model's default
    with open(tmp_path / "config.json", "w") as f:
        f.write(config.to_json_best_effort())
    result = _run_cli("--workdir", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "model seed_cnn, input 32x32x1, 10 classes" in result.stdout


@pytest.mark.parametrize("args, field", [(("--model", "seed_cnn", "--config",
                                           "configs/mnist_cnn.py"), "exactly one of"),
                                         (("--workdir", "/nonexistent"), "config.json"),
                                         (("--config", "configs/mnist_cnn.py",
                                           "--num_classes", "3"), "--config.num_classes")])
def test_source_mistakes_are_one_line(args, field):
    result = _run_cli(*args)
    assert result.returncode == 2
    message = result.stderr.strip().splitlines()
    assert len(message) == 1 and message[0].startswith("error: ") and field in message[0]
