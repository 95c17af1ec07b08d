"""Max-pool gradient routing without ``select_and_scatter``.

``lax.reduce_window``'s gradient is ``select_and_scatter_add``, which XLA runs as a slow
scalar loop on CPU (10-50x slower than the forward pass for the MNIST convnet's pools).
Instead, the forward pass of a differentiated max pool also records, per output element,
which window tap holds the maximum (an int8 index); the backward pass sends each cotangent
to that tap with elementwise selects, and needs neither the input nor the taps again.

Tie-breaking: where several pixels of a window equal its maximum, the gradient goes to the
first of them in row-major window order (top row first, then left to right) - the pixel
``select_and_scatter`` with XLA's ``>=`` selector picks, so gradients equal ``lax``'s even
with ties. The pooled value is NaN where a window holds a NaN (as with ``lax``); which pixel
of such a window receives the gradient is unspecified.

``routed_max_pool`` builds a differentiable max pool from an implementation's window taps
(and, optionally, its own forward kernel): the one gradient every max pool but ``lax`` shares.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from vision_jax.ops.custom_gradient import custom_gradient
from vision_jax.ops.pool_geometry import PoolGeometry, compute_dtype, unpad_from_windows

Taps = Callable[[PoolGeometry, jax.Array], Sequence[jax.Array]]


def max_and_argmax(taps: Sequence[jax.Array]) -> tuple[jax.Array, jax.Array]:
    """The elementwise max of the taps (row-major window order) and the index of the first
    tap that attains it (int8 for windows of up to 127 pixels).

    The int8 index is the only residual the backward pass needs: a quarter of the pooled
    output's bytes, instead of the whole input. (Inside one jit, XLA may fuse this select
    chain into the backward loop and recompute it there; that measured faster on CPU than
    forcing it into memory with a stacked ``argmax``, whose kh*kw-times larger stack costs
    more than the recomputation.)
    """
    index_dtype = jnp.int8 if len(taps) < 128 else jnp.int32
    best, index = taps[0], jnp.zeros(taps[0].shape, index_dtype)
    for k, tap in enumerate(taps[1:], start=1):
        # Strictly greater: an equal later pixel does not displace the first maximum.
        better = tap > best
        best = jnp.where(better, tap, best)
        index = jnp.where(better, jnp.array(k, index_dtype), index)
    # The output is the NaN-propagating max, as lax's (the select chain skips NaNs).
    return functools.reduce(jnp.maximum, taps), index


def max_pool_grad(index: jax.Array, grad: jax.Array, geom: PoolGeometry) -> jax.Array:
    """The gradient w.r.t. the unpadded input, given each window's argmax tap ``index`` and
    the cotangent of the pooled output (both (N, out_h, out_w, C)).

    Tap (i, j) of window (a, b) is padded pixel (a*sh + i, b*sw + j). Writing
    i = di*sh + ri, the padded grid splits into sh*sw phases (ri, rj), and a tap lands on
    its phase shifted by (di, dj): a plain, dense ``lax.pad``. The phases are then
    interleaved by a stack and a free reshape. This is several times faster on CPU than
    placing each tap with an interior-padded ``lax.pad`` (the transpose of a strided slice),
    whose sum touches the whole padded grid kh*kw times.
    """
    (kh, kw), (sh, sw) = geom.window, geom.strides
    out_h, out_w = geom.out_h, geom.out_w
    phase_h, phase_w = out_h + (kh - 1) // sh, out_w + (kw - 1) // sw
    zero = jnp.zeros((), grad.dtype)
    phases: dict[tuple[int, int], list[jax.Array]] = {}
    for k in range(kh * kw):
        (di, ri), (dj, rj) = divmod(k // kw, sh), divmod(k % kw, sw)
        routed = jnp.where(index == k, grad, zero)
        phases.setdefault((ri, rj), []).append(lax.pad(routed, zero, (
            (0, 0, 0), (di, phase_h - out_h - di, 0), (dj, phase_w - out_w - dj, 0), (0, 0, 0))))
    # Phases no tap reaches (stride > window) get no gradient.
    empty = jnp.zeros((grad.shape[0], phase_h, phase_w, grad.shape[3]), grad.dtype)
    summed = {key: functools.reduce(jnp.add, parts) for key, parts in phases.items()}
    rows = [jnp.stack([summed.get((ri, rj), empty) for rj in range(sw)], axis=3)
            for ri in range(sh)]
    grid = jnp.stack(rows, axis=2).reshape(grad.shape[0], phase_h * sh, phase_w * sw,
                                           grad.shape[3])
    return unpad_from_windows(grid, geom)


Pool = Callable[[PoolGeometry, jax.Array], jax.Array]


def routed_max_pool(taps: Taps, forward: Pool | None = None) -> Pool:
    """``pool(geom, x)``: the max over ``taps(geom, x)`` (the kh*kw window taps in row-major
    order, in the compute dtype, padding at the dtype's lowest value), or ``forward(geom, x)``
    when given, differentiated by routing each cotangent to its window's first maximum.

    The only residual is the int8 argmax; the input is not kept."""

    def max_of_taps(geom: PoolGeometry, x: jax.Array) -> jax.Array:
        # An elementwise max of the kh*kw taps, not a reduction over window axes: XLA:CPU
        # runs the elementwise form as one vectorised loop, the reduction up to 8x slower.
        return functools.reduce(jnp.maximum, taps(geom, x)).astype(x.dtype)

    def with_argmax(geom: PoolGeometry, x: jax.Array):
        pooled, index = max_and_argmax(taps(geom, x))
        return (pooled.astype(x.dtype) if forward is None else forward(geom, x)), index

    def backward(geom: PoolGeometry, index: jax.Array, grad: jax.Array):
        # Overlapping windows add up on shared pixels: low-precision cotangents sum in f32.
        dx = max_pool_grad(index, grad.astype(compute_dtype(grad.dtype)), geom)
        return (dx.astype(grad.dtype),)

    return custom_gradient(forward or max_of_taps, backward, with_argmax)
