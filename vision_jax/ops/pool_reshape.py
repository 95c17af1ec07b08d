"""Pooling of non-overlapping windows (stride == window) by a reshape and a reduction.

The (padded or cropped) image is reshaped, for free, to (N, H/kh, kh, W/kw, kw, C) and
reduced over the two window axes: one fused loop on every backend, no ``reduce_window``.
The max-pool gradient is routed by ``pool_max_grad`` (no ``select_and_scatter``).
"""

from __future__ import annotations

import jax

from vision_jax.ops.pool_geometry import (
    PoolGeometry,
    pad_to_windows,
    tiled_rows_cols,
)
from vision_jax.ops.pool_kernel import averaged, in_compute_dtype, register_pool
from vision_jax.ops.pool_max_grad import routed_max_pool


def to_windows(x: jax.Array, geom: PoolGeometry, fill: jax.Array) -> jax.Array:
    """(N, H, W, C) -> (N, out_h, kh, out_w, kw, C), padding with ``fill`` or cropping."""
    rows, cols = tiled_rows_cols(geom)
    padded = pad_to_windows(x, geom, fill, rows, cols)
    (kh, kw), channels = geom.window, geom.channels
    return padded.reshape(geom.batch, geom.out_h, kh, geom.out_w, kw, channels)


def _windows(geom: PoolGeometry, x: jax.Array, fill: jax.Array) -> list[jax.Array]:
    windows = to_windows(x, geom, fill)
    kh, kw = geom.window
    return [windows[:, :, i, :, j, :] for i in range(kh) for j in range(kw)]


# The window taps of a max pool, in the compute dtype (also the Pallas pool's residuals).
tile_taps = in_compute_dtype(_windows, "lowest")
max_pool_reshape = register_pool(
    "max_pool", "reshape", routed_max_pool(tile_taps), tiled=True,
    doc="Max pooling of non-overlapping windows; ``ValueError`` for overlapping ones.")
avg_pool_reshape = register_pool(
    "avg_pool", "reshape", averaged(_windows, "reshape"), tiled=True,
    doc="Average pooling of non-overlapping windows; padding is left out of the mean.")
