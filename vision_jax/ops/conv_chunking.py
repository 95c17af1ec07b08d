"""Running a convolution over the batch in cache-sized chunks (CPU only).

The matmul formulations materialise a temporary several times the input's size (im2col's
patch tensor, Winograd's transformed tiles). On CPU, a temporary that falls out of the
caches turns a compute-bound matmul into a DRAM-bound copy: measured on the 2-core
AVX-512 dev box, im2col on a (128, 14, 14, 32) input was 2-3x faster cut into
~1 MiB pieces than in one piece. So on CPU the batch is split into chunks whose
temporaries stay near ``CPU_CHUNK_BYTES`` and the chunks run one after another in a
``lax.map`` / ``lax.scan`` loop (its buffers are reused, so they stay cache-hot).

On GPU and TPU the whole batch is one chunk: their memory bandwidth makes the loop pure
overhead. The choice is made at trace time from ``jax.default_backend()``.

``chunked_conv`` wraps an implementation's forward and hand-written backward into one
custom-VJP function that does this for both passes.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from vision_jax.ops.conv_geometry import ConvGeometry

CPU_CHUNK_BYTES = 4 << 20


def batch_chunk(batch: int, bytes_per_image: int, budget_bytes: int | None = None) -> int:
    """Images per chunk: the whole batch off-CPU or when it fits ``budget_bytes``."""
    if budget_bytes is None:
        budget_bytes = CPU_CHUNK_BYTES if jax.default_backend() == "cpu" else 0
    if budget_bytes <= 0 or batch * bytes_per_image <= budget_bytes:
        return batch
    target = max(1, budget_bytes // max(bytes_per_image, 1))
    divisor = max(d for d in range(1, target + 1) if batch % d == 0)
    # A batch with no divisor near the target (e.g. a prime) is zero-padded instead.
    return divisor if 2 * divisor >= target else target


def _split(a: jax.Array, chunk: int) -> jax.Array:
    n = a.shape[0]
    padded = -(-n // chunk) * chunk
    if padded != n:
        a = jnp.pad(a, [(0, padded - n)] + [(0, 0)] * (a.ndim - 1))
    return a.reshape(padded // chunk, chunk, *a.shape[1:])


def _merge(a: jax.Array, n: int) -> jax.Array:
    return a.reshape(a.shape[0] * a.shape[1], *a.shape[2:])[:n]


def map_batch_chunks(fn: Callable[..., jax.Array], *arrays: jax.Array, chunk: int) -> jax.Array:
    """fn over leading-axis chunks of ``arrays`` (all the same batch), concatenated."""
    n = arrays[0].shape[0]
    if chunk >= n:
        return fn(*arrays)
    out = lax.map(lambda xs: fn(*xs), tuple(_split(a, chunk) for a in arrays))
    return _merge(out, n)


def scan_batch_chunks(
    fn: Callable[..., tuple[jax.Array, jax.Array]], *arrays: jax.Array, chunk: int
) -> tuple[jax.Array, jax.Array]:
    """For fn returning (per-image part, batch-summed part): concatenates the first and
    sums the second over chunks (e.g. input gradient and kernel gradient)."""
    n = arrays[0].shape[0]
    if chunk >= n:
        return fn(*arrays)
    split = tuple(_split(a, chunk) for a in arrays)
    summed_shape = jax.eval_shape(fn, *(s[0] for s in split))[1]
    # Accumulate in at least float32: a bf16 running sum would drop the later chunks' bits.
    total = jnp.zeros(summed_shape.shape, jnp.promote_types(summed_shape.dtype, jnp.float32))

    def step(total, xs):
        per_image, summed = fn(*xs)
        return total + summed.astype(total.dtype), per_image

    total, per_image = lax.scan(step, total, split)
    return _merge(per_image, n), total.astype(summed_shape.dtype)


Forward = Callable[[jax.Array, jax.Array, ConvGeometry], jax.Array]
Backward = Callable[[jax.Array, jax.Array, jax.Array, ConvGeometry], tuple[jax.Array, jax.Array]]


def chunked_conv(
    forward: Forward, backward: Backward, temp_elements_per_image: Callable[[ConvGeometry], int]
) -> Callable[[jax.Array, jax.Array, ConvGeometry], jax.Array]:
    """Builds conv(x, kernel, geom) with a custom VJP, both passes run over batch chunks.

    ``forward(x, kernel, geom)`` and ``backward(x, kernel, grad, geom) -> (grad_x,
    grad_kernel)`` see one chunk and a ``geom`` whose batch is the chunk's. Only ``x`` and
    ``kernel`` are kept for the backward pass. ``temp_elements_per_image`` sizes the
    chunks: the implementation's largest temporary, in elements per image.
    """

    def chunking(geom: ConvGeometry, dtype) -> tuple[int, ConvGeometry]:
        per_image = temp_elements_per_image(geom) * jnp.dtype(dtype).itemsize
        chunk = batch_chunk(geom.batch, per_image)
        return chunk, dataclasses.replace(geom, batch=min(chunk, geom.batch))

    @functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
    def conv(x: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
        chunk, chunk_geom = chunking(geom, x.dtype)
        return map_batch_chunks(lambda xc: forward(xc, kernel, chunk_geom), x, chunk=chunk)

    def conv_fwd(x, kernel, geom):
        return conv(x, kernel, geom), (x, kernel)

    def conv_bwd(geom, residuals, grad):
        x, kernel = residuals
        chunk, chunk_geom = chunking(geom, x.dtype)
        grad_x, grad_kernel = scan_batch_chunks(
            lambda xc, gc: backward(xc, kernel, gc, chunk_geom), x, grad, chunk=chunk
        )
        return grad_x.astype(x.dtype), grad_kernel.astype(kernel.dtype)

    conv.defvjp(conv_fwd, conv_bwd)
    return conv
