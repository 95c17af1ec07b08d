"""Shape arithmetic shared by every convolution implementation.

One place normalises ``strides`` / ``padding`` / ``dilation`` / ``groups``, checks them
against the input and kernel shapes, and works out the output size, so that every
implementation agrees with ``lax.conv_general_dilated`` on the same arguments and fails
with the same one-line error on bad ones.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Sequence

import jax
from jax import lax

Pair = tuple[int, int]
Padding = str | Sequence[Sequence[int]]


def conv_output_size(size: int, kernel: int, stride: int, pad_total: int, dilation: int) -> int:
    """Output length along one axis: floor((n + p_total - d*(k-1) - 1) / s) + 1."""
    return (size + pad_total - dilation * (kernel - 1) - 1) // stride + 1


def same_padding(size: int, kernel: int, stride: int, dilation: int) -> Pair:
    """XLA's "SAME" split: output ceil(n/s), the extra odd pixel goes to the high side."""
    out = -(-size // stride)
    total = max((out - 1) * stride + dilation * (kernel - 1) + 1 - size, 0)
    return total // 2, total - total // 2


@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """Every static number an implementation needs; hashable so it can be a static jit arg."""

    batch: int
    in_h: int
    in_w: int
    in_c: int
    kernel_h: int
    kernel_w: int
    out_c: int
    strides: Pair
    dilation: Pair
    padding: tuple[Pair, Pair]
    groups: int
    out_h: int
    out_w: int

    @property
    def taps(self) -> int:
        return self.kernel_h * self.kernel_w

    @property
    def in_c_per_group(self) -> int:
        return self.in_c // self.groups

    @property
    def out_c_per_group(self) -> int:
        return self.out_c // self.groups

    @property
    def padded_h(self) -> int:
        return self.in_h + sum(self.padding[0])

    @property
    def padded_w(self) -> int:
        return self.in_w + sum(self.padding[1])


def _pair(value: int | Sequence[int], name: str, where: str) -> Pair:
    try:
        pair = (operator.index(value),) * 2 if not isinstance(value, Sequence) else tuple(
            operator.index(v) for v in value
        )
    except TypeError:
        pair = ()
    if len(pair) != 2 or min(pair) < 1:
        raise ValueError(f"{where}: {name} must be two positive ints (h, w); got {value!r}")
    return pair


def _explicit_padding(padding: Padding, where: str) -> tuple[Pair, Pair] | str:
    if isinstance(padding, str):
        upper = padding.upper()
        if upper not in ("SAME", "VALID"):
            raise ValueError(
                f"{where}: padding must be 'SAME', 'VALID' or ((top, bottom), (left, right)); "
                f"got {padding!r}"
            )
        return upper
    try:
        pads = tuple((int(lo), int(hi)) for lo, hi in padding)
    except (TypeError, ValueError):
        pads = ()
    if len(pads) != 2:
        raise ValueError(
            f"{where}: padding must be 'SAME', 'VALID' or ((top, bottom), (left, right)); "
            f"got {padding!r}"
        )
    return pads


def conv_geometry(
    x_shape: Sequence[int],
    kernel_shape: Sequence[int],
    *,
    strides: int | Sequence[int] = (1, 1),
    padding: Padding = "SAME",
    dilation: int | Sequence[int] = (1, 1),
    groups: int = 1,
    impl: str = "conv2d",
) -> ConvGeometry:
    """Validates NHWC ``x_shape`` / HWIO ``kernel_shape`` and the conv arguments.

    Raises a one-line ``ValueError`` that names the implementation and the argument.
    """
    where = f"conv2d impl={impl!r}"
    if len(x_shape) != 4:
        raise ValueError(f"{where}: x must be NHWC (4-D); got shape {tuple(x_shape)}")
    if len(kernel_shape) != 4:
        raise ValueError(f"{where}: kernel must be HWIO (4-D); got shape {tuple(kernel_shape)}")
    batch, in_h, in_w, in_c = (int(d) for d in x_shape)
    kernel_h, kernel_w, kernel_in, out_c = (int(d) for d in kernel_shape)
    strides = _pair(strides, "strides", where)
    dilation = _pair(dilation, "dilation", where)
    if not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{where}: groups must be a positive int; got {groups!r}")
    if in_c % groups or out_c % groups:
        raise ValueError(
            f"{where}: groups={groups} must divide both the input channels ({in_c}) and the "
            f"kernel's output channels ({out_c})"
        )
    if kernel_in * groups != in_c:
        raise ValueError(
            f"{where}: kernel input channels {kernel_in} x groups {groups} must equal the input's "
            f"{in_c} channels; use a kernel of shape (kh, kw, {in_c // groups}, out)"
        )
    pads = _explicit_padding(padding, where)
    if pads == "SAME":
        pads = (
            same_padding(in_h, kernel_h, strides[0], dilation[0]),
            same_padding(in_w, kernel_w, strides[1], dilation[1]),
        )
    elif pads == "VALID":
        pads = ((0, 0), (0, 0))
    out_h = conv_output_size(in_h, kernel_h, strides[0], sum(pads[0]), dilation[0])
    out_w = conv_output_size(in_w, kernel_w, strides[1], sum(pads[1]), dilation[1])
    if out_h < 1 or out_w < 1 or in_h + pads[0][0] < 0 or in_w + pads[1][0] < 0:
        raise ValueError(
            f"{where}: a {kernel_h}x{kernel_w} kernel with dilation {dilation} and padding {pads} "
            f"does not fit the {in_h}x{in_w} input (output would be {out_h}x{out_w}); "
            "use more padding or a smaller kernel"
        )
    return ConvGeometry(
        batch=batch, in_h=in_h, in_w=in_w, in_c=in_c,
        kernel_h=kernel_h, kernel_w=kernel_w, out_c=out_c,
        strides=strides, dilation=dilation, padding=pads, groups=groups,
        out_h=out_h, out_w=out_w,
    )


def pad_input(x: jax.Array, geom: ConvGeometry, extra_h: int = 0, extra_w: int = 0) -> jax.Array:
    """Applies the conv padding (negative values crop), plus ``extra`` zeros at the bottom/right."""
    (top, bottom), (left, right) = geom.padding
    return lax.pad(
        x,
        _zero(x.dtype),
        ((0, 0, 0), (top, bottom + extra_h, 0), (left, right + extra_w, 0), (0, 0, 0)),
    )


def _zero(dtype) -> jax.Array:
    return lax.full((), 0, dtype)


def tap_slice(padded: jax.Array, geom: ConvGeometry, i: int, j: int) -> jax.Array:
    """The input pixels kernel tap (i, j) multiplies, for every output pixel: (N, Ho, Wo, C)."""
    (sh, sw), (dh, dw) = geom.strides, geom.dilation
    start = (0, i * dh, j * dw, 0)
    limit = (
        padded.shape[0],
        i * dh + (geom.out_h - 1) * sh + 1,
        j * dw + (geom.out_w - 1) * sw + 1,
        padded.shape[3],
    )
    return lax.slice(padded, start, limit, (1, sh, sw, 1))


def untap(grad_tap: jax.Array, geom: ConvGeometry, i: int, j: int) -> jax.Array:
    """Transpose of ``tap_slice``: scatters an (N, Ho, Wo, C) gradient back onto the padded grid.

    Done with an interior-padded ``lax.pad`` rather than a scatter: XLA fuses a sum of pads
    into one elementwise loop on every backend, while strided scatters are slow on CPU.
    """
    (sh, sw), (dh, dw) = geom.strides, geom.dilation
    rows = i * dh + (geom.out_h - 1) * sh + 1
    cols = j * dw + (geom.out_w - 1) * sw + 1
    return lax.pad(
        grad_tap,
        _zero(grad_tap.dtype),
        (
            (0, 0, 0),
            (i * dh, geom.padded_h - rows, sh - 1),
            (j * dw, geom.padded_w - cols, sw - 1),
            (0, 0, 0),
        ),
    )


def unpad_input(padded_grad: jax.Array, geom: ConvGeometry) -> jax.Array:
    """Transpose of ``pad_input``: drops the padding rows/cols (re-adds zeros where it cropped)."""
    (top, bottom), (left, right) = geom.padding
    return lax.pad(
        padded_grad,
        _zero(padded_grad.dtype),
        ((0, 0, 0), (-top, -bottom, 0), (-left, -right, 0), (0, 0, 0)),
    )
