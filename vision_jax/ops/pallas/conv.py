"""A direct stride-1 convolution written with Pallas (GPU-targeted; runs anywhere interpreted).

One kernel instance computes one output tile: one output row of one image, all its
(padded) columns, for one block of output channels. It accumulates, in float32, one
matrix product per kernel tap:

    out[n, r, :, cblock] += x[n, r + dy, dx : dx + W_out, :] @ k[dy, dx, :, cblock]

Pallas' Triton lowering needs every loaded array to have a power-of-two size and
``jnp.dot`` operands of at least 16 along each axis, so the wrapper pads the output width,
the input channels and the output-channel block to powers of two >= 16 and slices the
padding off the result. Only the forward pass is a Pallas kernel; the gradient is XLA's
convolution transpose (``jax.vjp`` of ``lax.conv_general_dilated``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from vision_jax.ops.conv_geometry import ConvGeometry
from vision_jax.ops.conv_kernel import conv_kernel
from vision_jax.ops.kernels import register

# Where the kernels compile. TPU is not one: per-row blocks do not meet Mosaic's (8, 128) tiling.
SUPPORTED_BACKENDS = ("gpu",)

MIN_DOT_SIZE = 16  # Triton's tl.dot needs M, N, K >= 16.
MAX_CHANNEL_BLOCK = 128  # output channels per kernel instance: bounds the f32 accumulator.


def _padded_size(size: int) -> int:
    return max(pl.next_power_of_2(size), MIN_DOT_SIZE)


def _conv_tile_kernel(x_ref, k_ref, o_ref, *, taps_h: int, taps_w: int):
    # x_ref: (rows, cols, cin) one padded image; k_ref: (kh, kw, cin, cblock);
    # o_ref: (out_cols, cblock), output row program_id(1) of that image.
    row = pl.program_id(1)
    out_cols = o_ref.shape[0]
    acc = jnp.zeros(o_ref.shape, jnp.float32)
    for dy in range(taps_h):
        for dx in range(taps_w):
            pixels = x_ref[row + dy, pl.ds(dx, out_cols), :]
            acc += jnp.dot(pixels, k_ref[dy, dx], preferred_element_type=jnp.float32)
    o_ref[...] = acc.astype(o_ref.dtype)


def _conv_forward(x: jax.Array, kernel: jax.Array, geom: ConvGeometry,
                  interpret: bool) -> jax.Array:
    dtype = jnp.result_type(x.dtype, kernel.dtype)
    out_cols = _padded_size(geom.out_w)
    in_c = _padded_size(geom.in_c)
    block_c = min(_padded_size(geom.out_c), MAX_CHANNEL_BLOCK)
    out_c = -(-geom.out_c // block_c) * block_c
    rows = geom.out_h + geom.kernel_h - 1
    cols = out_cols + geom.kernel_w - 1
    (top, _), (left, _) = geom.padding
    x = lax.pad(x.astype(dtype), jnp.zeros((), dtype), (
        (0, 0, 0), (top, rows - geom.in_h - top, 0), (left, cols - geom.in_w - left, 0),
        (0, in_c - geom.in_c, 0)))
    kernel = jnp.pad(kernel.astype(dtype),
                     ((0, 0), (0, 0), (0, in_c - geom.in_c), (0, out_c - geom.out_c)))
    squeezed = pl.squeezed
    out = pl.pallas_call(
        functools.partial(_conv_tile_kernel, taps_h=geom.kernel_h, taps_w=geom.kernel_w),
        out_shape=jax.ShapeDtypeStruct((geom.batch, geom.out_h, out_cols, out_c), dtype),
        grid=(geom.batch, geom.out_h, out_c // block_c),
        in_specs=[
            pl.BlockSpec((squeezed, rows, cols, in_c), lambda n, r, c: (n, 0, 0, 0)),
            pl.BlockSpec((geom.kernel_h, geom.kernel_w, in_c, block_c),
                         lambda n, r, c: (0, 0, 0, c)),
        ],
        out_specs=pl.BlockSpec((squeezed, squeezed, out_cols, block_c),
                               lambda n, r, c: (n, r, 0, c)),
        interpret=interpret,
        name="vision_jax_conv2d",
    )(x, kernel)
    return out[:, :, :geom.out_w, :geom.out_c]


def _lax_conv(x, kernel, geom: ConvGeometry):
    return lax.conv_general_dilated(x, kernel, (1, 1), geom.padding,
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _backward(x, kernel, grad, geom: ConvGeometry):
    _, vjp = jax.vjp(functools.partial(_lax_conv, geom=geom), x, kernel)
    return vjp(grad)


def unsupported_reason(kernel_size: Sequence[int], strides: Sequence[int],
                       dilation: Sequence[int], groups: int) -> str | None:
    """Why the Pallas kernel cannot run these arguments, or None (stride 1, dilation 1, one
    group; any kernel size)."""
    del kernel_size
    if tuple(strides) == (1, 1) and tuple(dilation) == (1, 1) and groups == 1:
        return None
    return (f"conv2d impl='pallas': supports strides (1, 1), dilation (1, 1), groups 1 only; "
            f"got strides {tuple(strides)}, dilation {tuple(dilation)}, groups {groups}; "
            "use impl='lax'")


def _forward(x: jax.Array, kernel: jax.Array, geom: ConvGeometry, interpret: bool) -> jax.Array:
    if min(min(p) for p in geom.padding) < 0:
        raise ValueError(f"conv2d impl='pallas': padding must be non-negative; got "
                         f"{geom.padding}; use impl='lax'")
    return _conv_forward(x, kernel, geom, interpret)


_COMPILED, _INTERPRETED = (
    conv_kernel("pallas", functools.partial(_forward, interpret=interpret), _backward,
                unsupported=unsupported_reason)
    for interpret in (False, True))


def conv2d(x: jax.Array, kernel: jax.Array, *, strides: Sequence[int] = (1, 1),
           padding="SAME", dilation: Sequence[int] = (1, 1), groups: int = 1,
           interpret: bool = False) -> jax.Array:
    """Convolves NHWC ``x`` with an HWIO ``kernel`` (stride 1, no dilation, one group).

    ``interpret=True`` runs the kernel through Pallas' interpreter (any backend, slow).
    Other strides, dilations or groups raise ``ValueError``: use ``ops.conv2d(impl="lax")``.
    """
    run = _INTERPRETED if interpret else _COMPILED
    return run(x, kernel, strides=strides, padding=padding, dilation=dilation, groups=groups)


register("conv2d", "pallas", _COMPILED, backends=SUPPORTED_BACKENDS,
         unsupported=unsupported_reason)
