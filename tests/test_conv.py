"""conv2d implementations against lax.conv_general_dilated and hand-computed values."""

from __future__ import annotations

import json

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from vision_jax.ops import auto_table, conv_auto, conv_chunking, kernels
from vision_jax.ops import conv as conv_module
from vision_jax.ops.conv import conv2d, conv2d_lax, separable_conv2d
from vision_jax.ops.conv_auto import auto_conv_choice, conv_signature, write_auto_table
from vision_jax.ops.conv_chunking import batch_chunk, map_batch_chunks, scan_batch_chunks
from vision_jax.ops.conv_geometry import conv_output_size

IMPLEMENTATIONS = kernels.implementations("conv2d")


def choose_conv_impl(*args, **kwargs) -> str:
    return auto_conv_choice(*args, **kwargs)[0]

OURS = [name for name in IMPLEMENTATIONS if name != "lax"]
GENERAL = ["im2col", "shifted_sum"]  # every stride / padding / dilation / groups

# Few examples and tiny shapes: every example compiles a forward+VJP for lax and the impl.
SWEEP = settings(max_examples=6, deadline=None, derandomize=True)


# ----------------------------------------------------------------------------- helpers


def _conv_and_vjp(fn, x, kernel, cotangent, **conv_args):
    """Output and (grad_x, grad_kernel) for a random cotangent, jitted as one program."""

    @jax.jit
    def run(x, kernel, cotangent):
        out, vjp = jax.vjp(lambda a, b: fn(a, b, **conv_args), x, kernel)
        return (out, *vjp(cotangent))

    return run(x, kernel, cotangent)


def _random_case(seed, x_shape, kernel_shape, dtype=jnp.float32, **conv_args):
    rng = np.random.default_rng(seed)
    x = jnp.asarray(rng.standard_normal(x_shape), dtype)
    kernel = jnp.asarray(rng.standard_normal(kernel_shape), dtype)
    out_shape = jax.eval_shape(lambda a, b: conv2d_lax(a, b, **conv_args), x, kernel).shape
    cotangent = jnp.asarray(rng.standard_normal(out_shape), dtype)
    return x, kernel, cotangent


def _assert_close(actual, expected, rtol, atol_scale, name):
    expected = np.asarray(expected, np.float32)
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(
        np.asarray(actual, np.float32), expected, rtol=rtol, atol=atol_scale * scale, err_msg=name
    )


def _assert_matches_lax(impl, x_shape, kernel_shape, seed=0, dtype="float32", **conv_args):
    """Output, grad_x and grad_kernel of ``impl`` against lax: float32 tight; bfloat16 loose,
    against lax in float32 on the same bf16-rounded numbers."""
    x, kernel, cotangent = _random_case(seed, x_shape, kernel_shape, dtype, **conv_args)
    reference_inputs = [a.astype(jnp.float32) for a in (x, kernel, cotangent)]
    expected = _conv_and_vjp(conv2d_lax, *reference_inputs, **conv_args)
    actual = _conv_and_vjp(IMPLEMENTATIONS[impl], x, kernel, cotangent, **conv_args)
    tolerance = 1e-4 if dtype == "float32" else 3e-2
    for name, a, e in zip(("output", "grad_x", "grad_kernel"), actual, expected, strict=True):
        chex.assert_equal_shape([a, e])
        assert a.dtype == jnp.dtype(dtype), (impl, name, a.dtype)
        _assert_close(a, e, rtol=tolerance, atol_scale=tolerance,
                      name=f"{impl} {dtype} {name} {conv_args}")


def _naive_conv(image, kernel, stride=1, pad=0):
    """Plain-Python 2-D cross-correlation of one single-channel image (independent oracle)."""
    rows, cols = len(image), len(image[0])
    padded = [[0.0] * (cols + 2 * pad) for _ in range(rows + 2 * pad)]
    for r in range(rows):
        for c in range(cols):
            padded[r + pad][c + pad] = image[r][c]
    k = len(kernel)
    out_rows = (rows + 2 * pad - k) // stride + 1
    out_cols = (cols + 2 * pad - k) // stride + 1
    return [
        [
            sum(
                padded[i * stride + a][j * stride + b] * kernel[a][b]
                for a in range(k)
                for b in range(k)
            )
            for j in range(out_cols)
        ]
        for i in range(out_rows)
    ]


def _jit_call(impl, x, kernel, **conv_args):
    return jax.jit(lambda a, b: IMPLEMENTATIONS[impl](a, b, **conv_args))(x, kernel)


def _single_channel(image):
    return jnp.asarray(image, jnp.float32)[None, :, :, None]


def _runs(impl, **conv_args):
    """Whether impl supports these arguments (kernel size taken from conv_args)."""
    return conv_auto.unsupported_reason(impl, **conv_args) is None


# ----------------------------------------------------------------------------- strategies

paddings = st.one_of(
    st.just("SAME"),
    st.just("VALID"),
    st.tuples(
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.integers(0, 3), st.integers(0, 3)),
    ),
)


KERNEL_SIZES, STRIDES, DILATIONS, GROUPS = (
    st.integers(1, 3), st.integers(1, 3), st.integers(1, 2), st.integers(1, 3)
)


@st.composite
def conv_cases(draw, kernel_sizes=KERNEL_SIZES, strides=STRIDES, dilations=DILATIONS,
               groups=GROUPS):
    g = draw(groups)
    x_shape = (
        draw(st.integers(1, 3)), draw(st.integers(1, 12)), draw(st.integers(1, 12)),
        g * draw(st.integers(1, 8 // g)),  # at most 8 channels
    )
    kernel_shape = (draw(kernel_sizes), draw(kernel_sizes), x_shape[3] // g,
                    g * draw(st.integers(1, 8 // g)))
    conv_args = dict(
        strides=(draw(strides), draw(strides)),
        padding=draw(paddings),
        dilation=(draw(dilations), draw(dilations)),
        groups=g,
    )
    if conv_args["padding"] != "SAME":  # SAME always fits; the others may leave no output
        pads = ((0, 0), (0, 0)) if conv_args["padding"] == "VALID" else conv_args["padding"]
        for axis in (0, 1):
            out = conv_output_size(x_shape[1 + axis], kernel_shape[axis],
                                   conv_args["strides"][axis], sum(pads[axis]),
                                   conv_args["dilation"][axis])
            assume(out >= 1)
    return x_shape, kernel_shape, conv_args


# ----------------------------------------------------------------------------- property sweeps


dtypes = st.sampled_from(["float32", "float32", "bfloat16"])


@pytest.mark.parametrize("impl", GENERAL)
@SWEEP
@given(case=conv_cases(), seed=st.integers(0, 2**16), dtype=dtypes)
def test_general_impls_match_lax_forward_and_gradients(impl, case, seed, dtype):
    x_shape, kernel_shape, conv_args = case
    _assert_matches_lax(impl, x_shape, kernel_shape, seed=seed, dtype=dtype, **conv_args)


@SWEEP
@given(
    case=conv_cases(kernel_sizes=st.just(3), strides=st.just(1), dilations=st.just(1),
                    groups=st.integers(1, 2)),
    seed=st.integers(0, 2**16),
    dtype=dtypes,
)
def test_winograd_matches_lax_forward_and_gradients(case, seed, dtype):
    x_shape, kernel_shape, conv_args = case
    _assert_matches_lax("winograd", x_shape, kernel_shape, seed=seed, dtype=dtype, **conv_args)


@SWEEP
@given(
    case=conv_cases(kernel_sizes=st.integers(1, 7), dilations=st.just(1), groups=st.just(1)),
    seed=st.integers(0, 2**16),
    dtype=dtypes,
)
def test_fft_matches_lax_forward_and_gradients(case, seed, dtype):
    x_shape, kernel_shape, conv_args = case
    _assert_matches_lax("fft", x_shape, kernel_shape, seed=seed, dtype=dtype, **conv_args)


@pytest.mark.parametrize("impl", ["winograd", "fft"])
@settings(max_examples=15, deadline=None, derandomize=True)
@given(case=conv_cases(kernel_sizes=st.integers(1, 5)))
def test_restricted_impls_reject_unsupported_arguments_clearly(impl, case):
    x_shape, kernel_shape, conv_args = case
    reason = conv_auto.unsupported_reason(
        impl, kernel_shape, conv_args["strides"], conv_args["dilation"], conv_args["groups"]
    )
    assume(reason is not None)
    x, kernel = jax.ShapeDtypeStruct(x_shape, jnp.float32), jax.ShapeDtypeStruct(kernel_shape,
                                                                                   jnp.float32)
    with pytest.raises(ValueError, match=f"impl='{impl}' supports only") as error:
        jax.eval_shape(lambda a, b: IMPLEMENTATIONS[impl](a, b, **conv_args), x, kernel)
    message = str(error.value)
    assert "Use impl='im2col' or 'auto'" in message
    # The message names the offending argument with its value.
    strides, dilation, groups = conv_args["strides"], conv_args["dilation"], conv_args["groups"]
    offending = [f"dilation={dilation}"] if dilation != (1, 1) else []
    if impl == "winograd":
        offending += [f"strides={strides}"] if strides != (1, 1) else []
        offending += [f"kernel size={kernel_shape[:2]}"] if kernel_shape[:2] != (3, 3) else []
    else:
        offending += [f"groups={groups}"] if groups != 1 else []
    assert offending and all(part in message for part in offending), message


@pytest.mark.parametrize("impl", OURS)
def test_bfloat16_matches_float32_reference_loosely(impl):
    _assert_matches_lax(impl, (2, 7, 6, 4), (3, 3, 4, 5), seed=3, dtype="bfloat16",
                        strides=(1, 1), padding=((1, 2), (0, 1)), dilation=(1, 1), groups=1)


@pytest.mark.parametrize("impl", GENERAL)
def test_depthwise_with_channel_multiplier_matches_lax(impl):
    _assert_matches_lax(impl, (2, 9, 8, 4), (3, 3, 1, 8), strides=(2, 1), padding="SAME",
                        dilation=(1, 1), groups=4)


# (Winograd with negative padding: see the row-band test.)
@pytest.mark.parametrize("impl", ["im2col", "shifted_sum", "fft"])
def test_negative_padding_crops_like_lax(impl):
    _assert_matches_lax(impl, (1, 9, 8, 2), (3, 3, 2, 3), strides=(1, 1),
                        padding=((-1, 2), (3, -2)), dilation=(1, 1), groups=1)


@pytest.mark.parametrize("impl", GENERAL)
def test_second_order_gradients_match_lax(impl):
    """The hand-written backward passes are themselves differentiable (gradient penalties)."""
    x, kernel, _ = _random_case(11, (2, 6, 5, 3), (3, 3, 3, 4))

    def penalty_grad(fn):
        def penalty(x, kernel):
            grad_x = jax.grad(lambda a: jnp.sum(jnp.tanh(fn(a, kernel, padding="SAME"))))(x)
            return jnp.sum(grad_x**2)

        return jax.jit(jax.grad(penalty, argnums=1))(x, kernel)

    expected = penalty_grad(conv2d_lax)
    _assert_close(penalty_grad(IMPLEMENTATIONS[impl]), expected, 1e-4, 1e-4, impl)


# ----------------------------------------------------------------------------- batch chunking


@pytest.mark.parametrize(
    "batch, per_image, budget, expected",
    [
        (128, 1000, 4000, 4),  # largest divisor of the batch within budget
        (6, 1000, 4000, 3),
        (10, 1000, 100_000, 10),  # everything fits: one chunk
        (5, 1000, 4000, 4),  # prime batch: no divisor near 4, so pad to 8 and use 4
        (7, 1000, 500, 1),  # one image over budget still runs, one at a time
        (128, 1000, 0, 128),  # budget 0 (GPU/TPU): never chunk
    ],
)
def test_batch_chunk_sizes(batch, per_image, budget, expected):
    assert batch_chunk(batch, per_image, budget) == expected


def test_chunk_helpers_match_whole_batch_with_padding():
    x = jnp.arange(5 * 3, dtype=jnp.float32).reshape(5, 3)
    g = jnp.linspace(-1.0, 1.0, 15).reshape(5, 3)
    np.testing.assert_allclose(map_batch_chunks(lambda a: a * 2.0, x, chunk=2), x * 2.0)
    per_image, total = scan_batch_chunks(lambda a, b: (a * b, jnp.sum(a * b, 0)), x, g, chunk=2)
    np.testing.assert_allclose(per_image, x * g, rtol=1e-6)
    np.testing.assert_allclose(total, jnp.sum(x * g, 0), rtol=1e-6)


# Each implementation's largest temporary per image of a (6, 6, 2) input, 3x3 -> 3 channels:
# im2col patches 6*6*9*2 floats, shifted-sum one slice + the output 6*6*(2+3).
PER_IMAGE_BYTES = {"im2col": 6 * 6 * 9 * 2 * 4, "shifted_sum": 6 * 6 * 5 * 4}


# (Winograd's chunk loop is exercised by the row-band test below: thinnest bands, 1 per chunk.)
@pytest.mark.parametrize("impl, budget_images", [("im2col", 1), ("im2col", 4), ("shifted_sum", 4)])
def test_chunked_execution_matches_lax(impl, budget_images, monkeypatch):
    """Force small CPU chunks: batch 5 runs as 5 chunks of 1, or zero-padded to 2 chunks of 4."""
    monkeypatch.setattr(conv_chunking, "CPU_CHUNK_BYTES", budget_images * PER_IMAGE_BYTES[impl])
    if jax.default_backend() == "cpu":
        assert batch_chunk(5, PER_IMAGE_BYTES[impl]) == budget_images
    _assert_matches_lax(impl, (5, 6, 6, 2), (3, 3, 2, 3), strides=(1, 1), padding="SAME",
                        dilation=(1, 1), groups=1)


@pytest.mark.parametrize(
    "impl, x_shape, kernel_shape, conv_args",
    [
        ("im2col", (2, 9, 7, 3), (3, 3, 3, 4),
         dict(strides=(2, 2), padding=((0, 2), (1, 0)), dilation=(1, 1), groups=1)),
        ("im2col", (1, 11, 6, 4), (1, 1, 4, 5),  # stride > kernel: bands need no halo
         dict(strides=(2, 2), padding="VALID", dilation=(1, 1), groups=1)),
        ("shifted_sum", (2, 12, 5, 2), (3, 3, 1, 4),
         dict(strides=(1, 1), padding="SAME", dilation=(2, 1), groups=2)),
        ("winograd", (1, 10, 6, 2), (3, 3, 2, 3),
         dict(strides=(1, 1), padding=((-1, 3), (1, 1)), dilation=(1, 1), groups=1)),
    ],
)
def test_row_bands_match_lax(impl, x_shape, kernel_shape, conv_args, monkeypatch):
    """A 1-byte budget cuts every image into the thinnest row bands (slabs with halos)."""
    monkeypatch.setattr(conv_chunking, "CPU_CHUNK_BYTES", 1)
    _assert_matches_lax(impl, x_shape, kernel_shape, **conv_args)


# ----------------------------------------------------------------------------- textbook values

IMAGE_1_TO_25 = [[5 * r + c + 1 for c in range(5)] for r in range(5)]
ONES_3X3 = [[1.0] * 3 for _ in range(3)]

# Worked by hand: each entry is the sum of the in-bounds 3x3 neighbourhood of 1..25.
EXPECTED_VALID = [[63, 72, 81], [108, 117, 126], [153, 162, 171]]
EXPECTED_SAME = [
    [16, 27, 33, 39, 28],
    [39, 63, 72, 81, 57],
    [69, 108, 117, 126, 87],
    [99, 153, 162, 171, 117],
    [76, 117, 123, 129, 88],
]
EXPECTED_STRIDE2_PAD1 = [[16, 33, 28], [69, 117, 87], [76, 123, 88]]


def test_hand_computed_values_agree_with_plain_loops():
    # Guards the literals above against typos: an independent pure-Python convolution.
    assert _naive_conv(IMAGE_1_TO_25, ONES_3X3) == EXPECTED_VALID
    assert _naive_conv(IMAGE_1_TO_25, ONES_3X3, pad=1) == EXPECTED_SAME
    assert _naive_conv(IMAGE_1_TO_25, ONES_3X3, stride=2, pad=1) == EXPECTED_STRIDE2_PAD1


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
@pytest.mark.parametrize(
    "strides, padding, expected",
    [
        ((1, 1), "VALID", EXPECTED_VALID),
        ((1, 1), "SAME", EXPECTED_SAME),
        ((2, 2), ((1, 1), (1, 1)), EXPECTED_STRIDE2_PAD1),
    ],
)
def test_textbook_1_to_25_with_3x3_ones(impl, strides, padding, expected):
    if not _runs(impl, kernel_shape=(3, 3), strides=strides):
        pytest.skip(f"{impl} does not support strides={strides} (error tested elsewhere)")
    x = _single_channel(IMAGE_1_TO_25)
    out = _jit_call(impl, x, jnp.ones((3, 3, 1, 1)), strides=strides, padding=padding)
    np.testing.assert_allclose(out[0, :, :, 0], np.asarray(expected, np.float32), atol=1e-3)


@pytest.mark.parametrize(
    "size, kernel, stride, pad_total, dilation, expected",
    [
        (5, 3, 1, 0, 1, 3),
        (5, 3, 1, 2, 1, 5),
        (5, 3, 2, 2, 1, 3),
        (28, 3, 1, 2, 1, 28),
        (28, 5, 1, 0, 1, 24),
        (224, 7, 2, 6, 1, 112),
        (224, 3, 2, 2, 1, 112),
        (224, 1, 2, 0, 1, 112),
        (10, 3, 1, 0, 2, 6),
        (10, 3, 3, 4, 3, 3),
        (7, 1, 2, 0, 1, 4),
        (6, 4, 3, 1, 1, 2),
        (1, 3, 1, 2, 1, 1),
    ],
)
def test_output_size_formula(size, kernel, stride, pad_total, dilation, expected):
    assert conv_output_size(size, kernel, stride, pad_total, dilation) == expected
    # ... and every implementation (and lax) produces exactly that many rows.
    low = pad_total // 2
    padding = ((low, pad_total - low), (0, 0))
    x = jnp.zeros((1, size, 1, 1))
    kernel_array = jnp.zeros((kernel, 1, 1, 1))
    for name, fn in IMPLEMENTATIONS.items():
        if not _runs(name, kernel_shape=kernel_array.shape, strides=(stride, 1),
                     dilation=(dilation, 1)):
            continue
        out = jax.eval_shape(
            lambda a, b, fn=fn: fn(a, b, strides=(stride, 1), padding=padding,
                                   dilation=(dilation, 1)),
            x, kernel_array,
        )
        assert out.shape == (1, expected, 1, 1), name


SOBEL_X = [[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_sobel_responds_only_at_a_vertical_step_edge(impl):
    step = [[0.0] * 4 + [1.0] * 4 for _ in range(8)]  # edge between columns 3 and 4
    kernel = jnp.stack(
        [jnp.asarray(SOBEL_X), jnp.asarray(SOBEL_X).T], axis=-1
    )[:, :, None, :]  # (3, 3, 1, 2): x-gradient and y-gradient filters
    out = np.asarray(_jit_call(impl, _single_channel(step), kernel, padding="VALID"))[0]
    # Windows over columns 2-4 and 3-5 straddle the edge: response 1 + 2 + 1 = 4.
    expected_x = np.zeros((6, 6), np.float32)
    expected_x[:, 2:4] = 4.0
    np.testing.assert_allclose(out[:, :, 0], expected_x, atol=1e-4)
    np.testing.assert_allclose(out[:, :, 1], 0.0, atol=1e-4)  # no horizontal edge anywhere


@pytest.mark.parametrize("impl", list(IMPLEMENTATIONS))
def test_box_blur_preserves_constant_interior(impl):
    image = jnp.full((1, 7, 9, 1), 5.0)
    out = np.asarray(_jit_call(impl, image, jnp.full((3, 3, 1, 1), 1.0 / 9.0)))[0, :, :, 0]
    np.testing.assert_allclose(out[1:-1, 1:-1], 5.0, rtol=1e-5)
    # Zero padding darkens the border: corners see 4 of 9 pixels, edges 6 of 9.
    np.testing.assert_allclose(out[0, 0], 5.0 * 4 / 9, rtol=1e-5)
    np.testing.assert_allclose(out[0, 4], 5.0 * 6 / 9, rtol=1e-5)


# ----------------------------------------------------------------------------- dispatcher


def test_unknown_impl_lists_the_choices():
    with pytest.raises(ValueError, match="unknown impl 'nope'.*'im2col'.*'auto'"):
        conv2d(jnp.zeros((1, 4, 4, 1)), jnp.zeros((3, 3, 1, 1)), impl="nope")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(x_shape=(1, 4, 4, 3), kernel_shape=(3, 3, 2, 4)), "kernel input channels"),
        (dict(x_shape=(1, 4, 4, 3), kernel_shape=(3, 3, 1, 4), groups=3), "groups=3 must divide"),
        (dict(x_shape=(1, 4, 4, 2), kernel_shape=(3, 3, 2, 4), padding="FULL"), "padding must"),
        (dict(x_shape=(1, 4, 4, 2), kernel_shape=(3, 3, 2, 4), padding=(1, 1)), "padding must"),
        (dict(x_shape=(1, 4, 4, 2), kernel_shape=(3, 3, 2, 4), strides=(0, 1)), "strides must"),
        (dict(x_shape=(1, 2, 4, 2), kernel_shape=(3, 3, 2, 4), padding="VALID"), "does not fit"),
        (dict(x_shape=(4, 4, 2), kernel_shape=(3, 3, 2, 4)), "x must be NHWC"),
    ],
)
@pytest.mark.parametrize("impl", [*OURS, "auto"])
def test_bad_arguments_raise_one_line_errors(impl, kwargs, message):
    kwargs = dict(kwargs)
    x, kernel = jnp.zeros(kwargs.pop("x_shape")), jnp.zeros(kwargs.pop("kernel_shape"))
    with pytest.raises(ValueError, match=message) as error:
        conv2d(x, kernel, impl=impl, **kwargs)
    assert f"impl='{impl}'" in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("impl", ["auto", *IMPLEMENTATIONS])
def test_conv2d_dispatches_every_impl_under_jit(impl):
    x, kernel, _ = _random_case(5, (2, 8, 8, 3), (3, 3, 3, 4))
    out = jax.jit(lambda a, b: conv2d(a, b, padding="SAME", impl=impl))(x, kernel)
    _assert_close(out, conv2d_lax(x, kernel), rtol=1e-4, atol_scale=1e-4, name=impl)


@pytest.mark.parametrize("impl", ["im2col", "shifted_sum", "lax"])
def test_separable_conv2d_is_depthwise_then_pointwise(impl):
    rng = np.random.default_rng(7)
    x = jnp.asarray(rng.standard_normal((2, 8, 7, 3)), jnp.float32)
    depthwise = jnp.asarray(rng.standard_normal((3, 3, 1, 6)), jnp.float32)  # multiplier 2
    pointwise = jnp.asarray(rng.standard_normal((1, 1, 6, 5)), jnp.float32)
    out = jax.jit(lambda *a: separable_conv2d(*a, padding="SAME", impl=impl))(
        x, depthwise, pointwise
    )
    expected = conv2d_lax(conv2d_lax(x, depthwise, groups=3), pointwise)
    _assert_close(out, expected, rtol=1e-4, atol_scale=1e-4, name=impl)


def test_separable_conv2d_rejects_mismatched_kernels():
    x = jnp.zeros((1, 6, 6, 3))
    with pytest.raises(ValueError, match="depthwise_kernel must be"):
        separable_conv2d(x, jnp.zeros((3, 3, 3, 6)), jnp.zeros((1, 1, 6, 4)))
    with pytest.raises(ValueError, match="pointwise_kernel must be"):
        separable_conv2d(x, jnp.zeros((3, 3, 1, 6)), jnp.zeros((1, 1, 5, 4)))


# ----------------------------------------------------------------------------- auto choice


def test_auto_defaults_to_lax_on_accelerators(tmp_path):
    missing = tmp_path / "none.json"
    for backend in ("gpu", "tpu"):
        assert choose_conv_impl((8, 32, 32, 16), (3, 3, 16, 32), backend=backend,
                                table_path=missing) == "lax"
    assert choose_conv_impl((8, 32, 32, 16), (3, 3, 16, 32), backend="cpu",
                            table_path=missing) in IMPLEMENTATIONS


@pytest.mark.parametrize(
    "x_shape, kernel_shape, strides, groups, expected",
    [
        ((2, 56, 56, 128), (3, 3, 1, 128), (1, 1), 128, "shifted_sum"),  # depthwise
        ((2, 64, 64, 16), (11, 11, 16, 16), (1, 1), 1, "fft"),
        ((2, 224, 224, 3), (11, 11, 3, 64), (4, 4), 1, "lax"),  # strided: FFT would waste 16x
        ((2, 224, 224, 3), (7, 7, 3, 64), (2, 2), 1, "lax"),
        ((128, 14, 14, 32), (3, 3, 32, 64), (1, 1), 1, "winograd"),  # many tiles per channel
        ((1, 14, 14, 512), (3, 3, 512, 512), (1, 1), 1, "im2col"),  # few tiles per channel
        ((128, 28, 28, 1), (3, 3, 1, 32), (1, 1), 1, "im2col"),  # one input channel
        ((2, 56, 56, 256), (1, 1, 256, 512), (2, 2), 1, "im2col"),
    ],
)
def test_auto_cpu_defaults(tmp_path, x_shape, kernel_shape, strides, groups, expected):
    choice = choose_conv_impl(x_shape, kernel_shape, strides, (1, 1), groups, "cpu",
                              table_path=tmp_path / "none.json")
    assert choice == expected
    assert conv_auto.unsupported_reason(choice, kernel_shape, strides, (1, 1), groups) is None


def test_auto_table_round_trip_and_lookup(tmp_path):
    path = tmp_path / "results" / "auto_table.json"
    write_auto_table(
        [
            {"backend": "cpu", "op": "conv2d", "best_impl": "shifted_sum",
             "x_shape": (8, 32, 32, 16), "kernel_shape": (3, 3, 16, 32), "median_s": 0.01},
            {"backend": "gpu", "op": "conv2d", "best_impl": "winograd",
             "signature": conv_signature((8, 32, 32, 16), (3, 3, 16, 32))},
            # Winograd cannot run a 5x5 kernel: the entry must be ignored, not obeyed.
            {"backend": "cpu", "op": "conv2d", "best_impl": "winograd",
             "signature": conv_signature((8, 32, 32, 16), (5, 5, 16, 32))},
            {"backend": "cpu", "op": "max_pool", "best_impl": "whatever", "signature": "x"},
        ],
        path,
    )
    records = json.loads(path.read_text())
    assert records[0]["signature"] == "x=8x32x32x16,k=3x3x16x32,s=1x1,d=1x1,g=1"
    assert records[0]["median_s"] == 0.01  # extra fields are kept
    assert len(auto_table.read_records(path)) == 4
    choose = lambda kernel, backend: choose_conv_impl(  # noqa: E731
        (8, 32, 32, 16), kernel, (1, 1), (1, 1), 1, backend, table_path=path)
    assert choose((3, 3, 16, 32), "cpu") == "shifted_sum"
    assert choose((3, 3, 16, 32), "gpu") == "winograd"
    assert choose((3, 3, 16, 32), "tpu") == "lax"
    assert choose((5, 5, 16, 32), "cpu") == choose_conv_impl(
        (8, 32, 32, 16), (5, 5, 16, 32), backend="cpu", table_path=tmp_path / "none.json")


@pytest.mark.parametrize(
    "record, message",
    [
        ({"backend": "cpu", "op": "conv2d", "best_impl": "magic", "signature": "s"}, "best_impl"),
        ({"backend": "cpu", "op": "conv2d", "best_impl": "lax"}, "give 'signature'"),
        ({"op": "conv2d", "best_impl": "lax", "signature": "s"}, "'backend'"),
    ],
)
def test_write_auto_table_rejects_bad_records(tmp_path, record, message):
    with pytest.raises(ValueError, match=message):
        write_auto_table([record], tmp_path / "t.json")


def test_broken_auto_table_names_the_file(tmp_path):
    path = tmp_path / "auto_table.json"
    path.write_text("[{not json")
    with pytest.raises(ValueError, match="auto_table.json: not valid JSON"):
        choose_conv_impl((1, 8, 8, 3), (3, 3, 3, 4), backend="cpu", table_path=path)


def test_write_auto_table_rejects_duplicate_signatures(tmp_path):
    record = {"backend": "cpu", "op": "conv2d", "best_impl": "lax", "signature": "s"}
    with pytest.raises(ValueError, match="repeats"):
        write_auto_table([record, record], tmp_path / "t.json")


def test_auto_reads_the_table_at_trace_time(tmp_path, monkeypatch):
    """conv2d(impl='auto') follows the table: a 'lax' entry puts a conv primitive in the jaxpr."""
    x, kernel = jnp.zeros((2, 6, 6, 3)), jnp.zeros((3, 3, 3, 4))
    path = tmp_path / "auto_table.json"
    monkeypatch.setattr(auto_table, "TABLE", path)
    backend = jax.default_backend()
    for best in ("lax", "shifted_sum"):
        write_auto_table([{"backend": backend, "op": "conv2d", "best_impl": best,
                           "x_shape": x.shape, "kernel_shape": kernel.shape}], path)
        jaxpr = str(jax.make_jaxpr(lambda a, b: conv_module.conv2d(a, b, impl="auto"))(x, kernel))
        assert ("conv_general_dilated" in jaxpr) == (best == "lax"), (best, jaxpr)
