"""The Pallas kernels, run through Pallas' interpreter, against lax."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from vision_jax.ops import kernels, pallas, pool


def normal(shape, seed, dtype=jnp.float32):
    """Random normal test data from NumPy: jax.random would compile for every new shape."""
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), dtype)


def reference_conv(x, kernel, padding):
    return lax.conv_general_dilated(x, kernel, (1, 1), padding,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def reference_max(x, window, padding):
    pads = padding if isinstance(padding, str) else ((0, 0), *padding, (0, 0))
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1), (1, *window, 1), pads)


def _value_and_grads(fn, args, cotangent):
    # Jitted: the interpreter's grid loop compiles once instead of running op by op.
    @jax.jit
    def run(args, cotangent):
        out, vjp = jax.vjp(fn, *args)
        return out, vjp(cotangent)

    return run(args, cotangent)


@pytest.mark.parametrize("x_shape,kernel_shape,padding", [
    ((2, 7, 9, 3), (3, 3, 3, 5), "SAME"),
    ((1, 5, 6, 3), (5, 3, 3, 2), ((2, 1), (0, 2))),
    ((1, 4, 4, 2), (1, 1, 2, 130), "SAME"),  # two output-channel blocks of 128
])
def test_conv2d_interpret_matches_lax_forward_and_gradient(x_shape, kernel_shape, padding):
    x = normal(x_shape, 0)
    kernel = normal(kernel_shape, 1)
    want = reference_conv(x, kernel, padding)
    cotangent = normal(want.shape, 2)
    out, grads = _value_and_grads(
        lambda a, b: pallas.conv2d(a, b, padding=padding, interpret=True), (x, kernel), cotangent)
    _, want_grads = _value_and_grads(lambda a, b: reference_conv(a, b, padding), (x, kernel),
                                     cotangent)
    chex.assert_trees_all_close(out, want, atol=1e-4, rtol=1e-4)
    chex.assert_trees_all_close(grads, want_grads, atol=1e-4, rtol=1e-4)


def test_conv2d_interpret_bfloat16_is_close_to_float32():
    x = normal((1, 5, 5, 4), 1, jnp.bfloat16)
    kernel = normal((3, 3, 4, 8), 2, jnp.bfloat16)
    out = jax.jit(lambda a, b: pallas.conv2d(a, b, interpret=True))(x, kernel)
    assert out.dtype == jnp.bfloat16
    want = reference_conv(x.astype(jnp.float32), kernel.astype(jnp.float32), "SAME")
    chex.assert_trees_all_close(out.astype(jnp.float32), want, atol=0.1, rtol=0.05)


@pytest.mark.parametrize("kwargs,message", [
    (dict(strides=(2, 2)), "supports strides"),
    (dict(dilation=(2, 2)), "supports strides"),
    (dict(padding=((-1, 0), (0, 0))), "padding must be non-negative"),
])
def test_conv2d_rejects_what_the_kernel_does_not_do(kwargs, message):
    with pytest.raises(ValueError, match=message):
        pallas.conv2d(jnp.zeros((1, 6, 6, 2)), jnp.zeros((3, 3, 2, 2)), interpret=True, **kwargs)


@pytest.mark.parametrize("x_shape,window,padding", [
    ((2, 8, 8, 3), (2, 2), "VALID"),
    ((1, 7, 9, 5), (3, 2), ((1, 1), (0, 1))),
])
def test_max_pool_interpret_matches_lax_forward_and_gradient(x_shape, window, padding):
    # Integer values: ties, so the first-max gradient convention is checked too.
    x = jnp.asarray(np.random.default_rng(3).integers(-2, 3, x_shape), jnp.float32)
    want = reference_max(x, window, padding)
    cotangent = normal(want.shape, 4)
    out, grads = _value_and_grads(
        lambda a: pallas.max_pool(a, window, padding=padding, interpret=True), (x,), cotangent)
    _, want_grads = _value_and_grads(lambda a: reference_max(a, window, padding), (x,),
                                     cotangent)
    chex.assert_trees_all_equal(out, want)
    chex.assert_trees_all_close(grads, want_grads, atol=1e-6)


def test_max_pool_rejects_overlapping_windows():
    with pytest.raises(ValueError, match="use impl='strided'"):
        pallas.max_pool(jnp.zeros((1, 8, 8, 1)), (3, 3), strides=(2, 2), interpret=True)


def test_registered_only_where_the_backend_compiles_them():
    for backend in ("cpu", "gpu", "tpu"):
        assert ("pallas" in kernels.implementations("conv2d", backend)) == (backend == "gpu")
        assert ("pallas" in kernels.implementations("max_pool", backend)) == (backend == "gpu")
        assert "pallas" not in kernels.implementations("avg_pool", backend)
    registered = "pallas" in kernels.implementations("max_pool")
    assert registered == (jax.default_backend() == "gpu")
    if not registered:
        with pytest.raises(ValueError, match="unknown impl 'pallas'"):
            pool.max_pool(jnp.zeros((1, 4, 4, 1)), (2, 2), impl="pallas")
