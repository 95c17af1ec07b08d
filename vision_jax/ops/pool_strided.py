"""Pooling of any windows (overlapping or not) as a reduction over strided slices.

Window tap (i, j) of every output pixel is one strided slice of the padded input; the
pooled output is the elementwise max (or sum) of the kh*kw taps, which XLA fuses into one
loop. Gradients avoid ``select_and_scatter`` (max: ``pool_max_grad``) and ``reduce_window``
transposes (average: the transpose of a strided slice is an interior-padded ``lax.pad``).
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
    window_tap,
)
from vision_jax.ops.pool_max_grad import max_and_argmax, max_pool_grad


def _taps(x: jax.Array, geom: PoolGeometry, fill: jax.Array) -> list[jax.Array]:
    """The kh*kw window taps in row-major order, each (N, out_h, out_w, C)."""
    padded = pad_to_windows(x, geom, fill, geom.padded_h, geom.padded_w)
    kh, kw = geom.window
    return [window_tap(padded, geom, i, j) for i in range(kh) for j in range(kw)]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _max_pool_strided(x: jax.Array, geom: PoolGeometry) -> jax.Array:
    dtype = compute_dtype(x.dtype)
    pooled = functools.reduce(jnp.maximum, _taps(x.astype(dtype), geom, lowest(dtype)))
    return pooled.astype(x.dtype)


def _max_pool_strided_fwd(x, geom):
    dtype = compute_dtype(x.dtype)
    pooled, index = max_and_argmax(_taps(x.astype(dtype), geom, lowest(dtype)))
    return pooled.astype(x.dtype), index


def _max_pool_strided_bwd(geom: PoolGeometry, index: jax.Array, grad: jax.Array):
    # Overlapping windows add up on shared pixels: low-precision cotangents sum in float32.
    dx = max_pool_grad(index, grad.astype(compute_dtype(grad.dtype)), geom)
    return (dx.astype(grad.dtype),)


_max_pool_strided.defvjp(_max_pool_strided_fwd, _max_pool_strided_bwd)


def max_pool_strided(x: jax.Array, window: Sequence[int], *,
                     strides: Sequence[int] | None = None, padding: Padding = "VALID") -> jax.Array:
    """Max pooling of any window geometry; gradient routed to the first max in each window."""
    geom = pool_geometry(x.shape, window, strides=strides, padding=padding,
                         where="max_pool impl='strided'")
    return _max_pool_strided(x, geom)


def avg_pool_strided(x: jax.Array, window: Sequence[int], *,
                     strides: Sequence[int] | None = None, padding: Padding = "VALID") -> jax.Array:
    """Average pooling of any window geometry; padding is left out of the mean."""
    geom = pool_geometry(x.shape, window, strides=strides, padding=padding,
                         where="avg_pool impl='strided'")
    require_float(x.dtype, "avg_pool impl='strided'")
    dtype = compute_dtype(x.dtype)
    totals = functools.reduce(jnp.add, _taps(x.astype(dtype), geom, jnp.zeros((), dtype)))
    return (totals / mean_divisor(geom, dtype)).astype(x.dtype)
