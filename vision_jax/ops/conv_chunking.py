"""Running a convolution over the batch in cache-sized chunks (CPU only).

The matmul formulations materialise a temporary several times the input's size (im2col's
patch tensor, Winograd's transformed tiles). On CPU, a temporary that falls out of the
caches turns a compute-bound matmul into a DRAM-bound copy: measured on the shared 2-core
AVX-512 dev box, im2col's forward on MNIST's (128, 14, 14, 32) layer took 82 ms in one
piece and 17 ms in 4 MiB chunks (1 MiB: 17 ms, 256 KiB: 20 ms). So on CPU the batch is
split into chunks whose temporaries stay near ``CPU_CHUNK_BYTES`` and the chunks run one
after another in a ``lax.map`` / ``lax.scan`` loop (its buffers are reused, so they stay
cache-hot).

When a single image is already over budget (VGG-16's conv1_2 at 224x224, batch 1: a
115 MB patch tensor, 874 ms forward in one piece, 118 ms in bands), the image is first
cut into bands of output rows: the padded input is re-laid out as overlapping row slabs
stacked on the batch axis (each slab carries the (kh-1)*d+1-s halo rows its band needs,
built from two slices and a concatenate, not one slice per band), convolved with VALID
padding, and the bands are stacked back. Autodiff of that re-layout sums the halo
gradients back onto the input.

On GPU and TPU nothing is split: their memory bandwidth makes the loop pure overhead. The
choice is made at trace time from ``jax.default_backend()``.

``chunked_passes`` runs an implementation's forward and hand-written backward over
chunks, ``in_row_bands`` over bands; ``conv_kernel.conv_kernel`` puts them together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax import lax

from vision_jax.ops.conv_geometry import ConvGeometry, pad_input

CPU_CHUNK_BYTES = 4 << 20


def _budget(budget_bytes: int | None) -> int:
    if budget_bytes is None:
        return CPU_CHUNK_BYTES if jax.default_backend() == "cpu" else 0
    return budget_bytes


def batch_chunk(batch: int, bytes_per_image: int, budget_bytes: int | None = None) -> int:
    """Images per chunk: the whole batch off-CPU or when it fits ``budget_bytes``."""
    budget_bytes = _budget(budget_bytes)
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


def row_band(
    geom: ConvGeometry, bytes_per_output_row: int, multiple: int = 1,
    budget_bytes: int | None = None,
) -> int | None:
    """Output rows per band when one image's temporaries exceed the budget, else None."""
    budget_bytes = _budget(budget_bytes)
    if budget_bytes <= 0 or geom.out_h * bytes_per_output_row <= budget_bytes:
        return None
    band = max(1, budget_bytes // max(bytes_per_output_row, 1))
    # A band's halo is taken from the next band's rows, so it must not be longer than them.
    band = max(band, -(-_halo(geom) // geom.strides[0]))
    band = -(-band // multiple) * multiple
    return band if band < geom.out_h else None


def _halo(geom: ConvGeometry) -> int:
    """Input rows a band of b output rows needs beyond its own b * stride rows."""
    return (geom.kernel_h - 1) * geom.dilation[0] + 1 - geom.strides[0]


def to_row_bands(x: jax.Array, geom: ConvGeometry, band: int) -> tuple[jax.Array, ConvGeometry]:
    """(N, H, W, C) -> (N * bands, slab_h, W_padded, C) overlapping row slabs, and their
    VALID geometry (each slab yields exactly ``band`` output rows)."""
    n_bands = -(-geom.out_h // band)
    block = band * geom.strides[0]
    halo = _halo(geom)
    rows = (n_bands + (halo > 0)) * block  # every block, plus one more to take halos from
    padded = pad_input(x, geom, extra_h=rows - geom.padded_h)  # zero rows / cropped rows
    n, _, width, c = padded.shape
    blocks = padded[:, : n_bands * block].reshape(n, n_bands, block, width, c)
    if halo > 0:
        following = padded[:, block:].reshape(n, n_bands, block, width, c)[:, :, :halo]
        slabs = jnp.concatenate([blocks, following], axis=2)
    else:
        slabs = blocks[:, :, : block + halo]
    slabs = slabs.reshape(n * n_bands, block + halo, width, c)
    slab_geom = dataclasses.replace(
        geom, batch=n * n_bands, in_h=block + halo, in_w=width,
        padding=((0, 0), (0, 0)), out_h=band,
    )
    return slabs, slab_geom


def from_row_bands(out: jax.Array, geom: ConvGeometry) -> jax.Array:
    """(N * bands, band, Wo, O) -> (N, Ho, Wo, O)."""
    out = out.reshape(geom.batch, -1, *out.shape[2:])
    return out[:, : geom.out_h]


Forward = Callable[[jax.Array, jax.Array, ConvGeometry], jax.Array]
Backward = Callable[[jax.Array, jax.Array, jax.Array, ConvGeometry], tuple[jax.Array, jax.Array]]
Sizer = Callable[[ConvGeometry], int]


def chunked_passes(forward: Forward, backward: Backward, temp_elements_per_output_row: Sizer
                   ) -> tuple[Callable[..., jax.Array], Callable[..., tuple[jax.Array, jax.Array]]]:
    """``forward(x, kernel, geom)`` and ``backward(x, kernel, grad, geom) -> (grad_x,
    grad_kernel)``, which see one chunk and a ``geom`` whose batch is the chunk's, as the
    (static-first) passes ``custom_gradient`` takes, each run over batch chunks.

    ``temp_elements_per_output_row`` sizes the chunks: the implementation's largest
    temporary, in elements per output row of one image.
    """

    def chunking(geom: ConvGeometry, dtype) -> tuple[int, ConvGeometry]:
        per_image = temp_elements_per_output_row(geom) * geom.out_h * jnp.dtype(dtype).itemsize
        chunk = batch_chunk(geom.batch, per_image)
        return chunk, dataclasses.replace(geom, batch=min(chunk, geom.batch))

    def forward_chunks(geom: ConvGeometry, x: jax.Array, kernel: jax.Array) -> jax.Array:
        chunk, chunk_geom = chunking(geom, x.dtype)
        return map_batch_chunks(lambda xc: forward(xc, kernel, chunk_geom), x, chunk=chunk)

    def backward_chunks(geom: ConvGeometry, residuals, grad):
        x, kernel = residuals
        chunk, chunk_geom = chunking(geom, x.dtype)
        return scan_batch_chunks(
            lambda xc, gc: backward(xc, kernel, gc, chunk_geom), x, grad, chunk=chunk)

    return forward_chunks, backward_chunks


def in_row_bands(conv: Callable[..., jax.Array], temp_elements_per_output_row: Sizer,
                 band_multiple: int = 1) -> Callable[..., jax.Array]:
    """``conv(geom, x, kernel)`` run over bands of output rows when one image's temporaries
    exceed the budget (see the module docstring); bands are a multiple of ``band_multiple``
    rows (Winograd tiles are 2 rows). Autodiff of the re-layout sums the halo gradients."""

    def banded(geom: ConvGeometry, x: jax.Array, kernel: jax.Array) -> jax.Array:
        row_bytes = temp_elements_per_output_row(geom) * jnp.dtype(x.dtype).itemsize
        band = row_band(geom, row_bytes, band_multiple)
        if band is None:
            return conv(geom, x, kernel)
        slabs, slab_geom = to_row_bands(x, geom, band)
        return from_row_bands(conv(slab_geom, slabs, kernel), geom)

    return banded
