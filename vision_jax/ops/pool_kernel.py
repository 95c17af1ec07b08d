"""Turns a pooling computation into a registered ``max_pool`` / ``avg_pool`` implementation.

Every implementation takes the same public arguments (NHWC ``x``, ``window``, ``strides``,
``padding``), resolves them with ``pool_geometry`` and fails with the same one-line errors;
that shell is written once, here, and an implementation module keeps only ``run(geom, x)``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from vision_jax.ops import kernels
from vision_jax.ops.pool_geometry import (
    Padding,
    PoolGeometry,
    compute_dtype,
    lowest,
    mean_divisor,
    pool_geometry,
    require_float,
)

Run = Callable[[PoolGeometry, jax.Array], jax.Array]
# taps(geom, x, fill): the kh*kw window taps of x in row-major order, each (N, out_h, out_w, C).
Taps = Callable[[PoolGeometry, jax.Array, jax.Array], Sequence[jax.Array]]


def in_compute_dtype(taps: Taps, fill: str) -> Callable[[PoolGeometry, jax.Array], list]:
    """``taps`` of ``x`` cast to the compute dtype, padding at ``fill`` ("lowest" for a max,
    "zero" for a sum)."""

    def compute_taps(geom: PoolGeometry, x: jax.Array) -> list[jax.Array]:
        dtype = compute_dtype(x.dtype)
        value = lowest(dtype) if fill == "lowest" else jnp.zeros((), dtype)
        return list(taps(geom, x.astype(dtype), value))

    return compute_taps


def averaged(taps: Taps, name: str) -> Run:
    """Average pooling from window taps; padding is left out of the mean."""
    summed_taps = in_compute_dtype(taps, "zero")

    def run(geom: PoolGeometry, x: jax.Array) -> jax.Array:
        require_float(x.dtype, f"avg_pool impl={name!r}")
        totals = functools.reduce(jnp.add, summed_taps(geom, x))
        return (totals / mean_divisor(geom, compute_dtype(x.dtype))).astype(x.dtype)

    return run


def tiled_geometry(op: str, impl: str, x_shape: Sequence[int], window, strides,
                   padding: Padding) -> PoolGeometry:
    """``pool_geometry`` plus the check that the windows tile the image (stride == window)."""
    where = f"{op} impl={impl!r}"
    geom = pool_geometry(x_shape, window, strides=strides, padding=padding, where=where)
    if not geom.tiles:
        raise ValueError(f"{where}: needs non-overlapping windows with strides == window; got "
                         f"window {geom.window}, strides {geom.strides}; use impl='strided'")
    return geom


def pool_kernel(op: str, name: str, run: Run, *, tiled: bool = False,
                doc: str = "") -> Callable[..., jax.Array]:
    """The public ``<op>_<name>(x, window, *, strides=None, padding="VALID")`` running
    ``run(geom, x)``; ``tiled``: only non-overlapping windows (strides == window)."""

    def pool(x: jax.Array, window: Sequence[int], *, strides: Sequence[int] | None = None,
             padding: Padding = "VALID") -> jax.Array:
        if tiled:
            geom = tiled_geometry(op, name, x.shape, window, strides, padding)
        else:
            geom = pool_geometry(x.shape, window, strides=strides, padding=padding,
                                 where=f"{op} impl={name!r}")
        return run(geom, x)

    pool.__name__ = pool.__qualname__ = f"{op}_{name}"
    pool.__doc__ = doc
    return pool


def register_pool(op: str, name: str, run: Run, *, tiled: bool = False,
                  backends: tuple[str, ...] | None = None, doc: str = "") -> kernels.Kernel:
    """``pool_kernel`` registered as ``<op>(impl=name)`` for ``backends`` (None: all)."""
    return kernels.register(op, name, pool_kernel(op, name, run, tiled=tiled, doc=doc),
                            backends=backends)
