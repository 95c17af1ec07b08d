"""Pooling of any windows (overlapping or not) as a reduction over strided slices.

Window tap (i, j) of every output pixel is one strided slice of the padded input; the
pooled output is the elementwise max (or sum) of the kh*kw taps, which XLA fuses into one
loop. Gradients avoid ``select_and_scatter`` (max: ``pool_max_grad``) and ``reduce_window``
transposes (average: the transpose of a strided slice is an interior-padded ``lax.pad``).
"""

from __future__ import annotations

import jax

from vision_jax.ops.pool_geometry import PoolGeometry, pad_to_windows, window_tap
from vision_jax.ops.pool_kernel import averaged, in_compute_dtype, register_pool
from vision_jax.ops.pool_max_grad import routed_max_pool


def _taps(geom: PoolGeometry, x: jax.Array, fill: jax.Array) -> list[jax.Array]:
    padded = pad_to_windows(x, geom, fill, geom.padded_h, geom.padded_w)
    kh, kw = geom.window
    return [window_tap(padded, geom, i, j) for i in range(kh) for j in range(kw)]


max_pool_strided = register_pool(
    "max_pool", "strided", routed_max_pool(in_compute_dtype(_taps, "lowest")),
    doc="Max pooling of any window geometry; gradient routed to the first max in each window.")
avg_pool_strided = register_pool(
    "avg_pool", "strided", averaged(_taps, "strided"),
    doc="Average pooling of any window geometry; padding is left out of the mean.")
