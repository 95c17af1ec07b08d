"""U-Net: output shapes for several sizes, depths and upsampling modes; the divisibility error;
the transposed-conv upsampling against the textbook definition (NumPy)."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vision_jax import models
from vision_jax.data.sources import DatasetInfo
from vision_jax.models.unet import Upsample
from vision_jax.training import validate
from vision_jax.training.defaults import default_config
from vision_jax.training.run_config import parse_config


def _output_shape(size, depth, upsample, channels=3, num_classes=5):
    model = models.create("unet", num_classes=num_classes, depth=depth, base_width=4,
                          upsample=upsample)
    x = jnp.zeros((2, *size, channels))
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    return jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
@pytest.mark.parametrize(("size", "depth"), [((16, 16), 1), ((32, 48), 2), ((64, 64), 3),
                                             ((16, 32), 4)])
def test_logits_have_the_input_size(size, depth, upsample):
    out = _output_shape(size, depth, upsample)
    assert out.shape == (2, *size, 5)
    assert out.dtype == jnp.float32


def test_bfloat16_compute_still_gives_float32_logits():
    model = models.create("unet", num_classes=3, depth=2, base_width=4, dtype=jnp.bfloat16)
    x = jnp.zeros((1, 16, 16, 1))
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, train=False))
    assert jax.eval_shape(lambda v: model.apply(v, x, train=False), variables).dtype == jnp.float32


@pytest.mark.parametrize("upsample", ["transpose", "resize"])
def test_forward_and_train_mode_run(upsample):
    model = models.create("unet", num_classes=3, depth=2, base_width=2, upsample=upsample,
                          dropout_rate=0.5)
    x = jax.random.normal(jax.random.key(1), (2, 8, 8, 1))
    # Jitted: run eagerly, every op of the init compiles on its own (a minute on 2 cores).
    variables = jax.jit(lambda key: model.init(key, x, train=False))(jax.random.key(0))
    logits = jax.jit(lambda v: model.apply(v, x, train=False))(variables)
    chex.assert_shape(logits, (2, 8, 8, 3))
    chex.assert_tree_all_finite(logits)
    train_logits, updates = jax.jit(lambda v: model.apply(
        v, x, train=True, mutable=["batch_stats"], rngs={"dropout": jax.random.key(2)}))(
        variables)
    chex.assert_shape(train_logits, (2, 8, 8, 3))
    assert "batch_stats" in updates


@pytest.mark.parametrize(("size", "depth", "divisor"), [(30, 2, 4), (24, 4, 16), (17, 1, 2)])
def test_indivisible_size_names_image_size_and_divisor(size, depth, divisor):
    with pytest.raises(ValueError, match=rf"config\.image_size.*multiple of {divisor}"):
        _output_shape((size, size), depth, "transpose")


def test_indivisible_size_is_a_config_error_before_compiling():
    config = default_config()
    config.model_name, config.num_classes, config.image_size = "unet", 3, 36
    config.dataset = "builtin:shapes_segmentation"
    config.model.depth = 3
    config.model.base_width = 4
    info = DatasetInfo("x", None, None, None, {"train": 1}, num_channels=3)
    with pytest.raises(validate.ConfigError, match=r"config\.image_size=36.*multiple of 8"):
        run = parse_config(config)
        validate.check_model_fits(run, validate.build_model(run), optax.identity(), info)


def test_unknown_upsample_mode_is_named():
    with pytest.raises(ValueError, match="config.model.upsample"):
        _output_shape((16, 16), 2, "pixelshuffle")


def test_transposed_upsampling_matches_the_definition():
    """out[2i+dy, 2j+dx, f] = bias[f] + sum_c x[i, j, c] * W[dy, dx, c, f] (stride-2, 2x2 kernel,
    the definition of a transposed convolution, e.g. PyTorch's ConvTranspose2d)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 5, 4)).astype(np.float32)
    module = Upsample(6, "transpose")
    variables = module.init(jax.random.key(0), x)
    kernel = np.asarray(variables["params"]["transpose"]["kernel"])  # (1, 1, 4, 2*2*6)
    bias = np.asarray(variables["params"]["transpose"]["bias"]).reshape(2, 2, 6)
    weights = kernel.reshape(4, 2, 2, 6).transpose(1, 2, 0, 3)  # (dy, dx, c, f)
    expected = np.zeros((2, 6, 10, 6), np.float32)
    for dy in range(2):
        for dx in range(2):
            expected[:, dy::2, dx::2] = np.einsum("nhwc,cf->nhwf", x, weights[dy, dx]) + bias[
                dy, dx]
    np.testing.assert_allclose(module.apply(variables, x), expected, rtol=1e-5, atol=1e-5)
