"""Pooling implementations against ``lax.reduce_window``, NumPy and hand-computed examples."""

from __future__ import annotations

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax import lax

from vision_jax import ops
from vision_jax.ops import auto_table, kernels, pool_auto
from vision_jax.ops.pool_geometry import pool_geometry


def choose_pool_impl(*args, **kwargs) -> str:
    return pool_auto.auto_pool_choice(*args, **kwargs)[0]

IMPLS = ("lax", "reshape", "strided")


def normal(shape, seed, dtype=jnp.float32):
    """Random normal test data from NumPy: jax.random would compile for every new shape."""
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), dtype)


def reference_max(x, window, strides, padding):
    """Independent reference: XLA's reduce_window, given the padding as the user spelled it."""
    pads = padding if isinstance(padding, str) else ((0, 0), *padding, (0, 0))
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, *window, 1), (1, *strides, 1), pads)


def reference_avg(x, window, strides, padding):
    pads = padding if isinstance(padding, str) else ((0, 0), *padding, (0, 0))
    dims, steps = (1, *window, 1), (1, *strides, 1)
    sums = lax.reduce_window(x.astype(jnp.float32), 0.0, lax.add, dims, steps, pads)
    ones = jnp.ones((1, *x.shape[1:3], 1), jnp.float32)
    return sums / lax.reduce_window(ones, 0.0, lax.add, dims, steps, pads)


def _grad(fn, x, cotangent):
    return jax.grad(lambda v: jnp.sum(fn(v).astype(jnp.float32) * cotangent))(x)


def _supported(impl, window, strides):
    return impl != "reshape" or tuple(window) == tuple(strides)


@st.composite
def pool_problems(draw):
    window = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    strides = draw(st.sampled_from([window, (1, 1), (2, 2), (window[0], 1), (3, 2)]))
    padding = draw(st.sampled_from(["VALID", "SAME", "EXPLICIT"]))
    if padding == "EXPLICIT":
        padding = tuple((draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1)))
                        for k in window)
    height = draw(st.integers(window[0], 8))
    width = draw(st.integers(window[1], 8))
    shape = (draw(st.integers(1, 2)), height, width, draw(st.integers(1, 3)))
    # Small integers: many ties, so the tie-breaking is exercised, not just generic values.
    values = draw(st.integers(0, 2**31 - 1))
    x = np.random.default_rng(values).integers(-3, 4, shape).astype(np.float32)
    return x, window, strides, padding


def _all_results(x, cotangent, window, strides, padding):
    """Forward and gradient of every supported impl and of the references, in one jit (one
    compilation per example instead of hundreds of eager ones)."""
    fns = {"ref_max": lambda v: reference_max(v, window, strides, padding),
           "ref_avg": lambda v: reference_avg(v, window, strides, padding)}
    for impl in IMPLS:
        if _supported(impl, window, strides):
            fns[f"{impl}_max"] = lambda v, i=impl: ops.max_pool(v, window, strides=strides,
                                                                padding=padding, impl=i)
            fns[f"{impl}_avg"] = lambda v, i=impl: ops.avg_pool(v, window, strides=strides,
                                                                padding=padding, impl=i)

    def compute(v, ct):
        return {name: (fn(v), _grad(fn, v, ct)) for name, fn in fns.items()}

    return jax.jit(compute)(x, cotangent)


@settings(max_examples=10, deadline=None)
@given(pool_problems())
def test_every_impl_matches_reduce_window_forward_and_gradient(problem):
    x, window, strides, padding = problem
    x = jnp.asarray(x)
    out_shape = reference_max(x, window, strides, padding).shape
    cotangent = normal(out_shape, 0)
    results = _all_results(x, cotangent, window, strides, padding)
    want_max, want_max_grad = results.pop("ref_max")
    want_avg, want_avg_grad = results.pop("ref_avg")
    assert results, "no implementation ran"
    for name, (out, grad) in results.items():
        if name.endswith("_max"):
            chex.assert_trees_all_close(out, want_max, atol=0, rtol=0, custom_message=name)
            # Exact ties included: the gradient goes to the same (first) pixel as lax's.
            chex.assert_trees_all_close(grad, want_max_grad, atol=1e-6, rtol=1e-6,
                                        custom_message=name)
        else:
            chex.assert_trees_all_close(out, want_avg, atol=1e-6, rtol=1e-6,
                                        custom_message=name)
            chex.assert_trees_all_close(grad, want_avg_grad, atol=1e-6, rtol=1e-6,
                                        custom_message=name)


@pytest.mark.parametrize("window,strides,padding", [
    ((2, 2), (2, 2), "SAME"),
    ((3, 3), (2, 2), ((1, 1), (1, 1))),
])
def test_bfloat16_close_to_float32_reference(window, strides, padding):
    x16 = normal((2, 9, 9, 4), 1, jnp.bfloat16)
    exact = x16.astype(jnp.float32)  # the same values, so max pooling is exactly comparable
    impls = [impl for impl in IMPLS if _supported(impl, window, strides)]

    @jax.jit
    def compute(v16, v32, ct):
        results = {}
        for impl in impls:
            def max_fn(v, impl=impl):
                return ops.max_pool(v, window, strides=strides, padding=padding, impl=impl)

            results[impl] = (max_fn(v16), _grad(max_fn, v16, ct),
                             ops.avg_pool(v16, window, strides=strides, padding=padding,
                                          impl=impl))
        want = (reference_max(v32, window, strides, padding),
                _grad(lambda v: reference_max(v, window, strides, padding), v32, ct),
                reference_avg(v32, window, strides, padding))
        return results, want

    out_shape = reference_max(exact, window, strides, padding).shape
    cotangent = normal(out_shape, 2)
    results, (want, want_grad, want_avg) = compute(x16, exact, cotangent)
    for impl, (out, grad, avg) in results.items():
        assert out.dtype == grad.dtype == avg.dtype == jnp.bfloat16, impl
        chex.assert_trees_all_close(out.astype(jnp.float32), want, atol=0, custom_message=impl)
        chex.assert_trees_all_close(grad.astype(jnp.float32), want_grad, atol=2e-2, rtol=2e-2,
                                    custom_message=impl)
        chex.assert_trees_all_close(avg.astype(jnp.float32), want_avg, atol=2e-2, rtol=2e-2,
                                    custom_message=impl)


# A 4x4 image, pooled 2x2 with stride 2, worked out by hand.
TEXTBOOK = np.array([[1, 3, 2, 4],
                     [5, 6, 1, 2],
                     [7, 2, 8, 1],
                     [0, 9, 3, 4]], np.float32)


@pytest.mark.parametrize("impl", IMPLS)
def test_textbook_2x2_pools(impl):
    x = jnp.asarray(TEXTBOOK)[None, :, :, None]
    np.testing.assert_array_equal(ops.max_pool(x, (2, 2), impl=impl)[0, :, :, 0],
                                  [[6, 4], [9, 8]])
    np.testing.assert_allclose(ops.avg_pool(x, (2, 2), impl=impl)[0, :, :, 0],
                               [[3.75, 2.25], [4.5, 4.0]])
    # d(sum of maxima)/dx is 1 at each window's maximum, 0 elsewhere.
    grad = jax.grad(lambda v: ops.max_pool(v, (2, 2), impl=impl).sum())(x)[0, :, :, 0]
    np.testing.assert_array_equal(grad, [[0, 0, 0, 1],
                                         [0, 1, 0, 0],
                                         [0, 0, 1, 0],
                                         [0, 1, 0, 0]])


@pytest.mark.parametrize("impl", ["lax", "strided"])
def test_textbook_overlapping_pools(impl):
    x = jnp.arange(25, dtype=jnp.float32).reshape(1, 5, 5, 1)
    # 3x3 stride 2 SAME on 5x5 pads one pixel each side; each max is a window's bottom-right
    # pixel inside the image: rows/cols 1, 3, 4.
    got = ops.max_pool(x, (3, 3), strides=(2, 2), padding="SAME", impl=impl)[0, :, :, 0]
    np.testing.assert_array_equal(got, [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
    # 3x3 stride 1 SAME average of 1..9, padding left out of each mean.
    y = jnp.arange(1, 10, dtype=jnp.float32).reshape(1, 3, 3, 1)
    got = ops.avg_pool(y, (3, 3), strides=(1, 1), padding="SAME", impl=impl)[0, :, :, 0]
    np.testing.assert_allclose(got, [[3.0, 3.5, 4.0], [4.5, 5.0, 5.5], [6.0, 6.5, 7.0]])


@pytest.mark.parametrize("impl", IMPLS)
def test_ties_send_the_gradient_to_the_first_pixel_of_the_window(impl):
    x = jnp.zeros((1, 2, 4, 1)).at[0, 1, 2, 0].set(-1.0)
    grad = jax.grad(lambda v: ops.max_pool(v, (2, 2), impl=impl).sum())(x)[0, :, :, 0]
    np.testing.assert_array_equal(grad, [[1, 0, 1, 0], [0, 0, 0, 0]])


def test_integer_max_pool_matches_reduce_window():
    x = jnp.asarray(np.random.default_rng(3).integers(-100, 100, (2, 6, 6, 3)), jnp.int32)
    want = lax.reduce_window(x, jnp.iinfo(jnp.int32).min, lax.max, (1, 3, 3, 1), (1, 2, 2, 1),
                             "SAME")
    for impl in ("lax", "strided"):
        np.testing.assert_array_equal(
            ops.max_pool(x, (3, 3), strides=(2, 2), padding="SAME", impl=impl), want)


def test_pools_jit_with_static_window():
    x = normal((2, 8, 8, 3), 4)
    fn = jax.jit(lambda v: ops.max_pool(v, (2, 2)) + ops.avg_pool(v, (2, 2)))
    want = reference_max(x, (2, 2), (2, 2), "VALID") + reference_avg(x, (2, 2), (2, 2), "VALID")
    chex.assert_trees_all_close(fn(x), want, atol=1e-6)


def test_global_pools_match_numpy():
    x = np.random.default_rng(0).normal(size=(2, 5, 4, 3)).astype(np.float32)
    np.testing.assert_allclose(ops.global_avg_pool(jnp.asarray(x)), x.mean(axis=(1, 2)),
                               rtol=1e-6)
    np.testing.assert_array_equal(ops.global_max_pool(jnp.asarray(x)), x.max(axis=(1, 2)))


def test_channel_max_pool_matches_numpy():
    x = np.random.default_rng(1).normal(size=(2, 3, 3, 6)).astype(np.float32)
    want = np.stack([x[..., 0:3].max(-1), x[..., 3:6].max(-1)], axis=-1)
    np.testing.assert_array_equal(ops.channel_max_pool(jnp.asarray(x), 3), want)


def test_channel_max_pool_rejects_a_group_that_does_not_divide():
    with pytest.raises(ValueError, match="6 channels do not split into groups of 4"):
        ops.channel_max_pool(jnp.zeros((1, 2, 2, 6)), 4)


@pytest.mark.parametrize("kwargs,message", [
    (dict(window=(0, 2)), "window must be two positive ints"),
    (dict(window=(2, 2), strides=(2,)), "strides must be two positive ints"),
    (dict(window=(2, 2), padding="FULL"), "padding must be 'SAME', 'VALID'"),
    (dict(window=(2, 2), padding=((1, -1), (0, 0))), "padding must be"),
    (dict(window=(9, 9)), "does not fit the 4x4 input"),
    (dict(window=(3, 3), strides=(2, 2), impl="reshape"), "use impl='strided'"),
    (dict(window=(2, 2), impl="fastest"), "unknown impl 'fastest'"),
])
def test_bad_arguments_raise_one_line_errors(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        ops.max_pool(jnp.zeros((1, 4, 4, 1)), **kwargs)
    assert "\n" not in str(info.value)


def test_avg_pool_rejects_integer_input():
    with pytest.raises(ValueError, match="x must be floating point"):
        ops.avg_pool(jnp.zeros((1, 4, 4, 1), jnp.int32), (2, 2), impl="reshape")


@pytest.mark.parametrize("x_shape,window,strides,padding,impl", [
    ((1, 8, 8, 1), (2, 2), None, "VALID", "reshape"),
    ((1, 7, 7, 1), (2, 2), None, "SAME", "reshape"),  # padded to whole tiles
    ((4, 11, 11, 1), (2, 2), None, "VALID", "strided"),  # tiles that crop a row and a column
    ((4, 8, 8, 1), (3, 3), (2, 2), "SAME", "strided"),
    ((1, 8, 8, 1), (3, 3), (2, 2), "SAME", "lax"),  # overlapping at batch 1
])
def test_auto_on_cpu_follows_the_measured_rule(x_shape, window, strides, padding, impl):
    assert jax.default_backend() == "cpu"
    geom = pool_geometry(x_shape, window, strides=strides, padding=padding)
    available = kernels.implementations("max_pool")
    assert choose_pool_impl("max_pool", geom, jnp.float32, available) == impl


def test_auto_on_an_accelerator_follows_the_table_and_defaults_to_lax(tmp_path):
    path = tmp_path / "auto_table.json"
    geom = pool_geometry((1, 8, 8, 1), (2, 2))
    signature = pool_auto.pool_signature(geom.describe(), jnp.float32)
    assert signature == "x=1x8x8x1 window=2x2 strides=2x2 padding=VALID dtype=float32"
    path.write_text(json.dumps([
        {"backend": "gpu", "op": "max_pool", "signature": signature, "best_impl": "reshape"},
        {"backend": "gpu", "op": "conv2d", "signature": "x=...", "best_impl": "lax"},
    ]))
    available = kernels.implementations("max_pool")

    def choose(backend, dtype=jnp.float32, op="max_pool"):
        return choose_pool_impl(op, geom, dtype, available, backend=backend,
                                          table_path=path)

    assert choose("gpu") == "reshape"
    assert choose("gpu", dtype=jnp.bfloat16) == "lax"  # not measured: the safe default
    assert choose("tpu") == "lax"
    assert choose("gpu", op="avg_pool") == "lax"


def test_auto_table_that_is_not_a_list_is_reported(tmp_path):
    path = tmp_path / "auto_table.json"
    path.write_text(json.dumps({"entries": []}))
    with pytest.raises(ValueError, match="expected a JSON list of records"):
        auto_table.choice("gpu", "max_pool", "x", path)
