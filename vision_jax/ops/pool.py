"""Max and average pooling over space (NHWC) and max pooling over depth.

Implementations, chosen by name (``impl=``) or by ``impl="auto"`` (see ``pool_auto``):

- ``lax``: ``lax.reduce_window``, the reference. Its max-pool gradient is
  ``select_and_scatter``, which is slow on CPU.
- ``reshape``: non-overlapping windows (stride == window) reduced after a free reshape.
- ``strided``: any windows, as a max/sum over the kh*kw strided slices of the padded input.
- ``pallas``: a Pallas kernel for non-overlapping max pooling, registered on GPU only
  (``vision_jax.ops.pallas.pool``).

Each registers itself in ``kernels.TABLES["max_pool"]`` / ``["avg_pool"]`` through
``pool_kernel.register_pool``; ``auto`` choices are recorded for ``kernels.json``.

Max-pool gradients of ``reshape``, ``strided`` and ``pallas`` go to the first maximal pixel
of each window in row-major order, the pixel ``lax`` picks, so they equal ``lax``'s gradients
even with ties (``pool_max_grad``). Average pooling leaves padding out of the mean.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from vision_jax.ops import kernel_choices, kernels
from vision_jax.ops.pool_auto import auto_pool_choice, pool_signature
from vision_jax.ops.pool_geometry import Padding, PoolGeometry, lowest, pool_geometry
from vision_jax.ops.pool_kernel import register_pool


def _lax_window_args(geom: PoolGeometry):
    pads = ((0, 0), *geom.padding, (0, 0))
    return (1, *geom.window, 1), (1, *geom.strides, 1), pads


def _max_pool_lax(geom: PoolGeometry, x: jax.Array) -> jax.Array:
    dims, strides, pads = _lax_window_args(geom)
    # A Python scalar init, so that JAX recognises the max monoid and can differentiate it.
    return lax.reduce_window(x, lowest(x.dtype).item(), lax.max, dims, strides, pads)


def _avg_pool_lax(geom: PoolGeometry, x: jax.Array) -> jax.Array:
    dims, strides, pads = _lax_window_args(geom)
    total = lax.reduce_window(x, 0.0, lax.add, dims, strides, pads)
    # Average over the elements inside the image only (as Keras/PyTorch count_include_pad=False).
    counts = lax.reduce_window(jnp.ones(x.shape[1:3], x.dtype)[None, :, :, None], 0.0, lax.add,
                               dims, strides, pads)
    return total / counts


max_pool_lax = register_pool("max_pool", "lax", _max_pool_lax,
                             doc="Reference: ``lax.reduce_window`` with ``max``.")
avg_pool_lax = register_pool(
    "avg_pool", "lax", _avg_pool_lax,
    doc="Reference: ``lax.reduce_window`` sums divided by the count of real pixels per window.")


def _dispatch(op: str, impl: str, x: jax.Array, window, strides, padding) -> jax.Array:
    if impl == "auto":
        geom = pool_geometry(x.shape, window, strides=strides, padding=padding,
                             where=f"{op} impl='auto'")
        impl, source = auto_pool_choice(op, geom, x.dtype, kernels.implementations(op))
        kernel_choices.note_choice(op, pool_signature(geom.describe(), x.dtype), impl, source)
    return kernels.lookup(op, impl)(x, window, strides=strides, padding=padding)


def max_pool(x: jax.Array, window: Sequence[int], *, strides: Sequence[int] | None = None,
             padding: Padding = "VALID", impl: str = "auto") -> jax.Array:
    """Max pooling over H and W of an NHWC array (``strides=None``: the window)."""
    return _dispatch("max_pool", impl, x, window, strides, padding)


def avg_pool(x: jax.Array, window: Sequence[int], *, strides: Sequence[int] | None = None,
             padding: Padding = "VALID", impl: str = "auto") -> jax.Array:
    """Average pooling over H and W of an NHWC array (padding excluded from the mean)."""
    return _dispatch("avg_pool", impl, x, window, strides, padding)


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
