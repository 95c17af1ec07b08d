"""Max and average pooling over space (NHWC) and max pooling over depth.

Implementations, chosen by name (``impl=``) or by ``impl="auto"`` (see ``pool_auto``):

- ``lax``: ``lax.reduce_window``, the reference. Its max-pool gradient is
  ``select_and_scatter``, which is slow on CPU.
- ``reshape``: non-overlapping windows (stride == window) reduced after a free reshape.
- ``strided``: any windows, as a max/sum over the kh*kw strided slices of the padded input.
- ``pallas``: a Pallas kernel for non-overlapping max pooling, registered on GPU only
  (``vision_jax.ops.pallas.register_implementations``).

Max-pool gradients of ``reshape``, ``strided`` and ``pallas`` go to the first maximal pixel
of each window in row-major order, the pixel ``lax`` picks, so they equal ``lax``'s gradients
even with ties (``pool_max_grad``). Average pooling leaves padding out of the mean.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from vision_jax.ops.pool_auto import choose_pool_impl
from vision_jax.ops.pool_geometry import Padding, lowest, pool_geometry
from vision_jax.ops.pool_reshape import avg_pool_reshape, max_pool_reshape
from vision_jax.ops.pool_strided import avg_pool_strided, max_pool_strided

PoolFn = Callable[..., jax.Array]


def _lax_window_args(x_shape, window, strides, padding, where):
    geom = pool_geometry(x_shape, window, strides=strides, padding=padding, where=where)
    pads = ((0, 0), *geom.padding, (0, 0))
    return geom, (1, *geom.window, 1), (1, *geom.strides, 1), pads


def max_pool_lax(x, window, *, strides=None, padding="VALID"):
    """Reference: ``lax.reduce_window`` with ``max``."""
    _, dims, strides, pads = _lax_window_args(x.shape, window, strides, padding,
                                              "max_pool impl='lax'")
    # A Python scalar init, so that JAX recognises the max monoid and can differentiate it.
    return lax.reduce_window(x, lowest(x.dtype).item(), lax.max, dims, strides, pads)


def avg_pool_lax(x, window, *, strides=None, padding="VALID"):
    """Reference: ``lax.reduce_window`` sums divided by the count of real pixels per window."""
    _, dims, strides, pads = _lax_window_args(x.shape, window, strides, padding,
                                              "avg_pool impl='lax'")
    total = lax.reduce_window(x, 0.0, lax.add, dims, strides, pads)
    # Average over the elements inside the image only (as Keras/PyTorch count_include_pad=False).
    counts = lax.reduce_window(jnp.ones(x.shape[1:3], x.dtype)[None, :, :, None], 0.0, lax.add,
                               dims, strides, pads)
    return total / counts


MAX_POOL_IMPLEMENTATIONS: dict[str, PoolFn] = {
    "lax": max_pool_lax,
    "reshape": max_pool_reshape,
    "strided": max_pool_strided,
}
AVG_POOL_IMPLEMENTATIONS: dict[str, PoolFn] = {
    "lax": avg_pool_lax,
    "reshape": avg_pool_reshape,
    "strided": avg_pool_strided,
}


def _register_accelerator_kernels() -> None:
    # Deferred to the first call: asking which backend runs initialises JAX's backends, which
    # must not happen at import (before jax.distributed.initialize).
    from vision_jax.ops import pallas

    pallas.register_implementations()


def _dispatch(table: dict[str, PoolFn], op: str, impl: str, x: jax.Array, window, strides,
              padding) -> jax.Array:
    _register_accelerator_kernels()
    if impl == "auto":
        geom = pool_geometry(x.shape, window, strides=strides, padding=padding,
                             where=f"{op} impl='auto'")
        impl = choose_pool_impl(op, geom, x.dtype, table)
    if impl not in table:
        raise ValueError(f"{op}: unknown impl {impl!r}; choose one of {sorted(table)} or 'auto'")
    return table[impl](x, window, strides=strides, padding=padding)


def max_pool(x: jax.Array, window: Sequence[int], *, strides: Sequence[int] | None = None,
             padding: Padding = "VALID", impl: str = "auto") -> jax.Array:
    """Max pooling over H and W of an NHWC array (``strides=None``: the window)."""
    return _dispatch(MAX_POOL_IMPLEMENTATIONS, "max_pool", impl, x, window, strides, padding)


def avg_pool(x: jax.Array, window: Sequence[int], *, strides: Sequence[int] | None = None,
             padding: Padding = "VALID", impl: str = "auto") -> jax.Array:
    """Average pooling over H and W of an NHWC array (padding excluded from the mean)."""
    return _dispatch(AVG_POOL_IMPLEMENTATIONS, "avg_pool", impl, x, window, strides, padding)


def global_avg_pool(x: jax.Array) -> jax.Array:
    """Mean over H and W: (N, H, W, C) -> (N, C)."""
    return jnp.mean(x, axis=(1, 2))


def global_max_pool(x: jax.Array) -> jax.Array:
    """Max over H and W: (N, H, W, C) -> (N, C)."""
    return jnp.max(x, axis=(1, 2))


def channel_max_pool(x: jax.Array, group: int) -> jax.Array:
    """Pooling over depth: the max over each run of ``group`` consecutive channels."""
    if not isinstance(group, int) or group < 1:
        raise ValueError(f"channel_max_pool: group must be a positive int; got {group!r}")
    channels = x.shape[-1]
    if channels % group:
        raise ValueError(f"channel_max_pool: {channels} channels do not split into groups of "
                         f"{group}; pick a group that divides {channels}")
    return jnp.max(x.reshape(*x.shape[:-1], channels // group, group), axis=-1)
