"""Pooling of non-overlapping windows (stride == window) by a reshape and a reduction.

The (padded or cropped) image is reshaped, for free, to (N, H/kh, kh, W/kw, kw, C) and
reduced over the two window axes: one fused loop on every backend, no ``reduce_window``.
The max-pool gradient is routed by ``pool_max_grad`` (no ``select_and_scatter``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp

from vision_jax.ops.pool_geometry import (
    Padding,
    PoolGeometry,
    compute_dtype,
    lowest,
    mean_divisor,
    pad_to_windows,
    pool_geometry,
    require_float,
    tiled_rows_cols,
)
from vision_jax.ops.pool_max_grad import max_and_argmax, max_pool_grad


def tiled_geometry(op: str, impl: str, x_shape: Sequence[int], window, strides,
                   padding: Padding) -> PoolGeometry:
    """``pool_geometry`` plus the check that the windows tile the image (stride == window)."""
    where = f"{op} impl={impl!r}"
    geom = pool_geometry(x_shape, window, strides=strides, padding=padding, where=where)
    if not geom.tiles:
        raise ValueError(f"{where}: needs non-overlapping windows with strides == window; got "
                         f"window {geom.window}, strides {geom.strides}; use impl='strided'")
    return geom


def to_windows(x: jax.Array, geom: PoolGeometry, fill: jax.Array) -> jax.Array:
    """(N, H, W, C) -> (N, out_h, kh, out_w, kw, C), padding with ``fill`` or cropping."""
    rows, cols = tiled_rows_cols(geom)
    padded = pad_to_windows(x, geom, fill, rows, cols)
    (kh, kw), channels = geom.window, geom.channels
    return padded.reshape(geom.batch, geom.out_h, kh, geom.out_w, kw, channels)


def _tile_taps(x: jax.Array, geom: PoolGeometry, fill: jax.Array | None = None
               ) -> list[jax.Array]:
    """The kh*kw window taps in row-major order, each (N, out_h, out_w, C), in the compute
    dtype; padding takes ``fill`` (default: the dtype's lowest value, for max)."""
    dtype = compute_dtype(x.dtype)
    fill = lowest(dtype) if fill is None else fill
    windows = to_windows(x.astype(dtype), geom, fill)
    kh, kw = geom.window
    return [windows[:, :, i, :, j, :] for i in range(kh) for j in range(kw)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def max_pool_tiled(x: jax.Array, geom: PoolGeometry) -> jax.Array:
    """Max over each tile; differentiable without ``select_and_scatter``."""
    # An elementwise max of the kh*kw taps, not ``.max(axis=(2, 4))``: XLA:CPU runs the
    # elementwise form as one vectorised loop, the reduction up to 8x slower (bf16).
    return functools.reduce(jnp.maximum, _tile_taps(x, geom)).astype(x.dtype)


def max_pool_tiled_fwd(x: jax.Array, geom: PoolGeometry) -> tuple[jax.Array, jax.Array]:
    """The pooled output and, as the residual, each window's argmax tap."""
    pooled, index = max_and_argmax(_tile_taps(x, geom))
    return pooled.astype(x.dtype), index


def max_pool_tiled_bwd(geom: PoolGeometry, index: jax.Array, grad: jax.Array
                       ) -> tuple[jax.Array]:
    """The gradient of ``max_pool_tiled`` (shared with the Pallas pool)."""
    dx = max_pool_grad(index, grad.astype(compute_dtype(grad.dtype)), geom)
    return (dx.astype(grad.dtype),)


max_pool_tiled.defvjp(max_pool_tiled_fwd, max_pool_tiled_bwd)


def max_pool_reshape(x: jax.Array, window: Sequence[int], *,
                     strides: Sequence[int] | None = None, padding: Padding = "VALID") -> jax.Array:
    """Max pooling of non-overlapping windows; ``ValueError`` for overlapping ones."""
    geom = tiled_geometry("max_pool", "reshape", x.shape, window, strides, padding)
    return max_pool_tiled(x, geom)


def avg_pool_reshape(x: jax.Array, window: Sequence[int], *,
                     strides: Sequence[int] | None = None, padding: Padding = "VALID") -> jax.Array:
    """Average pooling of non-overlapping windows; padding is left out of the mean."""
    geom = tiled_geometry("avg_pool", "reshape", x.shape, window, strides, padding)
    require_float(x.dtype, "avg_pool impl='reshape'")
    dtype = compute_dtype(x.dtype)
    totals = functools.reduce(jnp.add, _tile_taps(x, geom, fill=jnp.zeros((), dtype)))
    return (totals / mean_divisor(geom, dtype)).astype(x.dtype)
