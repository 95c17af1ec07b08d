"""Shape arithmetic shared by every spatial pooling implementation (NHWC).

One place validates ``window`` / ``strides`` / ``padding`` against the input, resolves
``"SAME"`` / ``"VALID"`` to explicit pads and works out the output size, so every
implementation agrees with ``lax.reduce_window`` on the same arguments and fails with the
same one-line error on bad ones. The output-size and SAME-split formulas are the
convolution's (a pooling window is a kernel without dilation), so they come from
``conv_geometry``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# The (h, w) argument check is the convolution's, so both report bad pairs identically.
from vision_jax.ops.conv_geometry import _pair, conv_output_size, same_padding

Pair = tuple[int, int]
Padding = str | Sequence[Sequence[int]]


@dataclasses.dataclass(frozen=True)
class PoolGeometry:
    """Every static number a pooling implementation needs; hashable (a static jit arg)."""

    batch: int
    in_h: int
    in_w: int
    channels: int
    window: Pair
    strides: Pair
    padding: tuple[Pair, Pair]
    padding_name: str  # "SAME", "VALID" or "EXPLICIT": how the caller spelled it, for keys
    out_h: int
    out_w: int

    @property
    def taps(self) -> int:
        return self.window[0] * self.window[1]

    @property
    def tiles(self) -> bool:
        """Whether the windows tile the (padded, cropped) image exactly: stride == window."""
        return self.strides == self.window

    @property
    def overlapping(self) -> bool:
        """Whether neighbouring windows share pixels (a stride smaller than the window)."""
        return any(s < k for s, k in zip(self.strides, self.window, strict=True))

    @property
    def crops(self) -> bool:
        """Whether some rows or columns of the padded image lie in no window."""
        return (self.out_h - 1) * self.strides[0] + self.window[0] < self.padded_h or (
            (self.out_w - 1) * self.strides[1] + self.window[1] < self.padded_w)

    @property
    def padded_h(self) -> int:
        return self.in_h + sum(self.padding[0])

    @property
    def padded_w(self) -> int:
        return self.in_w + sum(self.padding[1])

    def describe(self) -> str:
        """A stable, readable name of the geometry: benchmark ``shape`` and auto-table key."""
        (top, bottom), (left, right) = self.padding
        pads = self.padding_name if self.padding_name != "EXPLICIT" else (
            f"{top},{bottom},{left},{right}")
        return (f"x={self.batch}x{self.in_h}x{self.in_w}x{self.channels} "
                f"window={self.window[0]}x{self.window[1]} "
                f"strides={self.strides[0]}x{self.strides[1]} padding={pads}")


def _explicit_pads(padding: Padding, where: str) -> tuple[Pair, Pair] | str:
    message = (f"{where}: padding must be 'SAME', 'VALID' or ((top, bottom), (left, right)) "
               f"of non-negative ints; got {padding!r}")
    if isinstance(padding, str):
        if padding.upper() not in ("SAME", "VALID"):
            raise ValueError(message)
        return padding.upper()
    try:
        pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    except (TypeError, ValueError):
        pads = ()
    if len(pads) != 2 or min(min(p) for p in pads) < 0:
        raise ValueError(message)
    return pads


def pool_geometry(x_shape: Sequence[int], window: int | Sequence[int], *,
                  strides: int | Sequence[int] | None = None, padding: Padding = "VALID",
                  where: str = "pool") -> PoolGeometry:
    """Validates an NHWC ``x_shape`` and the pooling arguments (``strides=None``: the window).

    ``where`` names the op and implementation in the one-line ``ValueError``.
    """
    if len(x_shape) != 4:
        raise ValueError(f"{where}: x must be NHWC (4-D); got shape {tuple(x_shape)}")
    batch, in_h, in_w, channels = (int(d) for d in x_shape)
    window = _pair(window, "window", where)
    strides = window if strides is None else _pair(strides, "strides", where)
    pads = _explicit_pads(padding, where)
    padding_name = pads if isinstance(pads, str) else "EXPLICIT"
    if pads == "SAME":
        pads = (same_padding(in_h, window[0], strides[0], 1),
                same_padding(in_w, window[1], strides[1], 1))
    elif pads == "VALID":
        pads = ((0, 0), (0, 0))
    out_h = conv_output_size(in_h, window[0], strides[0], sum(pads[0]), 1)
    out_w = conv_output_size(in_w, window[1], strides[1], sum(pads[1]), 1)
    if out_h < 1 or out_w < 1:
        raise ValueError(f"{where}: a {window[0]}x{window[1]} window with padding {pads} does not "
                         f"fit the {in_h}x{in_w} input; use padding='SAME' or a smaller window")
    return PoolGeometry(batch=batch, in_h=in_h, in_w=in_w, channels=channels, window=window,
                        strides=strides, padding=pads, padding_name=padding_name,
                        out_h=out_h, out_w=out_w)


def lowest(dtype) -> np.ndarray:
    """The identity of ``max`` for ``dtype``: -inf for floats, the minimum for ints.

    A NumPy scalar, so it stays a concrete constant inside ``jit`` (``.item()`` works).
    """
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        return np.array(-np.inf, dtype)
    return np.array(jnp.iinfo(dtype).min, dtype)


def pad_to_windows(x: jax.Array, geom: PoolGeometry, fill: jax.Array | np.ndarray,
                   rows: int, cols: int) -> jax.Array:
    """Pads ``x`` with ``fill`` by the geometry's top/left pads and pads or crops the
    bottom/right so the result has exactly ``rows`` x ``cols`` pixels."""
    (top, _), (left, _) = geom.padding
    return lax.pad(x, fill.astype(x.dtype), (
        (0, 0, 0),
        (top, rows - geom.in_h - top, 0),
        (left, cols - geom.in_w - left, 0),
        (0, 0, 0)))


def unpad_from_windows(grad: jax.Array, geom: PoolGeometry) -> jax.Array:
    """Transpose of ``pad_to_windows``: drops pad rows/cols, re-adds zeros where it cropped."""
    (top, _), (left, _) = geom.padding
    rows, cols = grad.shape[1:3]
    return lax.pad(grad, jnp.zeros((), grad.dtype), (
        (0, 0, 0),
        (-top, geom.in_h + top - rows, 0),
        (-left, geom.in_w + left - cols, 0),
        (0, 0, 0)))


def tiled_rows_cols(geom: PoolGeometry) -> Pair:
    """The padded size whose (out_h, window_h) x (out_w, window_w) reshape is exact."""
    return geom.out_h * geom.window[0], geom.out_w * geom.window[1]


def window_tap(padded: jax.Array, geom: PoolGeometry, i: int, j: int) -> jax.Array:
    """Pixel (i, j) of every window, from the fully padded input: (N, out_h, out_w, C)."""
    sh, sw = geom.strides
    start = (0, i, j, 0)
    limit = (padded.shape[0], i + (geom.out_h - 1) * sh + 1, j + (geom.out_w - 1) * sw + 1,
             padded.shape[3])
    return lax.slice(padded, start, limit, (1, sh, sw, 1))


def window_counts(geom: PoolGeometry) -> np.ndarray:
    """How many real (non-padding) pixels each window covers: (out_h, out_w, 1), static.

    Computed in NumPy at trace time, so average pooling divides by a constant.
    """
    def along(size: int, kernel: int, stride: int, pad_lo: int, out: int) -> np.ndarray:
        starts = np.arange(out) * stride - pad_lo
        return np.clip(np.minimum(starts + kernel, size) - np.maximum(starts, 0), 0, None)

    rows = along(geom.in_h, geom.window[0], geom.strides[0], geom.padding[0][0], geom.out_h)
    cols = along(geom.in_w, geom.window[1], geom.strides[1], geom.padding[1][0], geom.out_w)
    return np.outer(rows, cols)[:, :, None]


def mean_divisor(geom: PoolGeometry, dtype) -> int | np.ndarray:
    """What each window's sum is divided by: the window size, or per-window real-pixel counts
    where padding reaches into windows (padding is left out of the mean)."""
    counts = window_counts(geom)
    return geom.taps if (counts == geom.taps).all() else counts.astype(dtype)


def compute_dtype(dtype) -> jnp.dtype:
    """float32 for low-precision floats, the dtype itself otherwise.

    Sums need float32's mantissa, and XLA:CPU runs bf16 elementwise code several times slower
    than float32; the converts fuse into the consumers, so this costs no memory traffic.
    """
    dtype = jnp.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.floating):
        return jnp.promote_types(dtype, jnp.float32)
    return dtype


def require_float(dtype, where: str) -> None:
    """Averages are only defined here for floating-point inputs."""
    if not jnp.issubdtype(jnp.dtype(dtype), jnp.floating):
        raise ValueError(f"{where}: x must be floating point; got {jnp.dtype(dtype)}; cast it "
                         "with x.astype(jnp.float32)")
