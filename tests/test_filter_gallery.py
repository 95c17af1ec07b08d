"""The course's hand-made kernels (`vision_jax.ops.filters`) and the filter gallery command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from vision_jax import ops
from vision_jax.errors import ConfigError
from vision_jax.filters import filter_image
from vision_jax.ops import filters

COURSE_VALUES = {
    "box_blur": np.full((3, 3), 1 / 9),
    "gaussian": np.array([[1, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16,
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "laplacian": [[0, 1, 0], [1, -4, 1], [0, 1, 0]],
    "sobel_x": [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]],
    "sobel_y": [[1, 2, 1], [0, 0, 0], [-1, -2, -1]],
    "central_difference": [[-0.5, 0, 0.5]],
    "emboss": [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]],
}
EDGE_BASES = {
    0: [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
    45: [[-1, -1, 0], [-1, 0, 1], [0, 1, 1]],
    90: [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
    135: [[0, 1, 1], [-1, 0, 1], [-1, -1, 0]],
}


@pytest.mark.parametrize("name", sorted(COURSE_VALUES))
def test_kernel_values_are_the_course_ones(name):
    np.testing.assert_allclose(filters.kernel(name), COURSE_VALUES[name], rtol=0, atol=1e-7)
    assert name in filters.names()


def test_box_blur_21_is_a_21x21_mean():
    kernel = filters.kernel("box_blur_21")
    assert kernel.shape == (21, 21)
    np.testing.assert_allclose(kernel, 1 / 441)
    with pytest.raises(ConfigError, match="odd"):
        filters.kernel("box_blur_4")


def test_edges8_is_an_hwio_bank_of_eight_orientations_averaging_rgb():
    bank = filters.kernel("edges8")
    assert bank.shape == (3, 3, 3, 8)
    for index, angle in enumerate(range(0, 360, 45)):
        base = np.asarray(EDGE_BASES[angle % 180]) * (1 if angle < 180 else -1)
        for channel in range(3):  # the RGB average: each input channel a third
            np.testing.assert_allclose(bank[:, :, channel, index], base / 3, atol=1e-7)


def test_unknown_name_is_a_config_error_listing_the_names():
    with pytest.raises(ConfigError, match="sobel_x"):
        filters.kernel("sobel")


def _conv(image, kernel, flip=False, padding="SAME"):
    hwio = jnp.asarray(kernel, jnp.float32)[:, :, None, None]
    return np.asarray(ops.conv2d(jnp.asarray(image, jnp.float32)[None, :, :, None], hwio,
                                 padding=padding, impl="lax", flip_kernel=flip))[0, :, :, 0]


def test_sobel_x_is_positive_on_a_dark_to_bright_vertical_edge():
    step = np.zeros((8, 8))
    step[:, 4:] = 1.0  # dark left half, bright right half: a vertical edge
    response = _conv(step, filters.kernel("sobel_x"))
    interior = response[1:-1]
    # Cross-correlation, as in a CNN layer: the edge columns respond +4 (1 + 2 + 1), the rest 0.
    np.testing.assert_allclose(interior[:, 3:5], 4.0)
    np.testing.assert_allclose(interior[:, 1:3], 0.0)
    np.testing.assert_allclose(interior[:, 5:7], 0.0)
    # True convolution (the course's definition) flips the kernel, and so the sign.
    np.testing.assert_allclose(_conv(step, filters.kernel("sobel_x"), flip=True)[1:-1, 3:5],
                               -4.0)


def test_laplacian_of_a_constant_image_is_zero():
    constant = np.full((9, 9), 0.7)
    np.testing.assert_allclose(_conv(constant, filters.kernel("laplacian"), padding="VALID"),
                               0.0, atol=1e-6)
    # With SAME padding the zeros around the image make a border; the inside stays zero.
    np.testing.assert_allclose(_conv(constant, filters.kernel("laplacian"))[1:-1, 1:-1], 0.0,
                               atol=1e-6)


def test_filter_image_applies_a_2d_kernel_to_the_channel_mean():
    rng = np.random.default_rng(0)
    image = rng.uniform(size=(10, 12, 3)).astype(np.float32)
    out = filter_image(image, "sobel_y")
    assert out.shape == (10, 12, 1)
    np.testing.assert_allclose(out[..., 0], _conv(image.mean(-1), filters.kernel("sobel_y")),
                               atol=1e-5)
    assert filter_image(image, "edges8").shape == (10, 12, 8)


def _run(*args):
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.run([sys.executable, "-m", "vision_jax.filters", *args], env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_writes_the_case_study(tmp_path):
    rng = np.random.default_rng(1)
    image = np.zeros((40, 56, 3), np.uint8)
    image[10:30, 15:45] = rng.integers(100, 255, size=3)  # a rectangle: edges in all directions
    Image.fromarray(image).save(tmp_path / "in.png")
    out = tmp_path / "out"
    result = _run(str(tmp_path / "in.png"), "--filters", "sobel_x,laplacian,edges8",
                  "--out", str(out))
    assert result.returncode == 0, result.stderr
    expected = ["sobel_x", "laplacian"] + [f"edges8_{a:03d}" for a in range(0, 360, 45)]
    for name in expected:
        pixels = np.asarray(Image.open(out / f"{name}.png"))
        assert pixels.shape == (40, 56)
        assert pixels.min() < 100 < 160 < pixels.max(), name  # sigmoid display: dark and light
    assert np.asarray(Image.open(out / "edges8.png")).ndim == 2
    stats = json.loads((out / "filters.json").read_text())["maps"]
    # Opposite orientations are negatives of each other.
    assert stats["edges8_000"]["max"] == pytest.approx(-stats["edges8_180"]["min"], abs=1e-5)


def test_cli_bad_filter_is_one_line(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "in.png")
    result = _run(str(tmp_path / "in.png"), "--filters", "sobelx", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("error: --filters") and "sobel_x" in result.stderr
