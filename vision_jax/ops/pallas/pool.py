"""Max pooling of non-overlapping windows (e.g. 2x2 stride 2) written with Pallas.

The wrapper pads/crops the image to whole windows (as the ``reshape`` implementation does)
and reshapes it, for free, to (N, out_h, kh, out_w, kw * C): window column j of channel c
sits at channel slot j * C + c. One kernel instance then produces one output row as the
elementwise max of kh * kw contiguous (out_w, C) loads - no strided or gathered access.

For Pallas' Triton lowering every load must have a power-of-two size, so out_w and C are
padded (with the dtype's lowest value) to powers of two. The gradient is the ``reshape``
implementation's first-max routing (``pool_max_grad.routed_max_pool``), equal to ``lax``'s.
Registered as ``max_pool(impl="pallas")`` on GPU only.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl

from vision_jax.ops.kernels import register
from vision_jax.ops.pallas.conv import SUPPORTED_BACKENDS
from vision_jax.ops.pool_geometry import (
    Padding,
    PoolGeometry,
    lowest,
    pad_to_windows,
    tiled_rows_cols,
)
from vision_jax.ops.pool_kernel import pool_kernel
from vision_jax.ops.pool_max_grad import routed_max_pool
from vision_jax.ops.pool_reshape import tile_taps


def _max_pool_row_kernel(x_ref, o_ref, *, taps_h: int, taps_w: int):
    # x_ref: (kh, out_cols, kw * channels) the windows of one output row; o_ref: (out_cols, C).
    channels = o_ref.shape[1]
    pooled = None
    for i in range(taps_h):
        for j in range(taps_w):
            tap = x_ref[i, :, pl.ds(j * channels, channels)]
            pooled = tap if pooled is None else jnp.maximum(pooled, tap)
    o_ref[...] = pooled


def _max_pool_forward(geom: PoolGeometry, x: jax.Array, interpret: bool) -> jax.Array:
    (kh, kw), fill = geom.window, lowest(x.dtype)
    out_cols = pl.next_power_of_2(geom.out_w)
    channels = pl.next_power_of_2(geom.channels)
    rows, cols = tiled_rows_cols(geom)
    x = pad_to_windows(x, geom, fill, rows, cols)
    x = lax.pad(x, fill, ((0, 0, 0), (0, 0, 0), (0, (out_cols - geom.out_w) * kw, 0),
                          (0, channels - geom.channels, 0)))
    x = x.reshape(geom.batch, geom.out_h, kh, out_cols, kw * channels)
    squeezed = pl.squeezed
    out = pl.pallas_call(
        functools.partial(_max_pool_row_kernel, taps_h=kh, taps_w=kw),
        out_shape=jax.ShapeDtypeStruct((geom.batch, geom.out_h, out_cols, channels), x.dtype),
        grid=(geom.batch, geom.out_h),
        in_specs=[pl.BlockSpec((squeezed, squeezed, kh, out_cols, kw * channels),
                               lambda n, r: (n, r, 0, 0, 0))],
        out_specs=pl.BlockSpec((squeezed, squeezed, out_cols, channels),
                               lambda n, r: (n, r, 0, 0)),
        interpret=interpret,
        name="vision_jax_max_pool",
    )(x)
    return out[:, :, :geom.out_w, :geom.channels]


def _pallas_max_pool(interpret: bool):
    # The Pallas kernel computes the output; the argmax residual and the gradient are the
    # reshape implementation's (XLA), whose windows these are.
    return routed_max_pool(tile_taps, functools.partial(_max_pool_forward, interpret=interpret))


_COMPILED, _INTERPRETED = (
    pool_kernel("max_pool", "pallas", _pallas_max_pool(interpret), tiled=True)
    for interpret in (False, True))


def max_pool(x: jax.Array, window: Sequence[int] = (2, 2), *,
             strides: Sequence[int] | None = None, padding: Padding = "VALID",
             interpret: bool = False) -> jax.Array:
    """Max pooling of an NHWC array over non-overlapping windows (strides == window).

    ``interpret=True`` runs the kernel through Pallas' interpreter (any backend, slow).
    Overlapping windows raise ``ValueError``: use ``ops.max_pool(impl="strided")``.
    """
    run = _INTERPRETED if interpret else _COMPILED
    return run(x, window, strides=strides, padding=padding)


register("max_pool", "pallas", _COMPILED, backends=SUPPORTED_BACKENDS)
