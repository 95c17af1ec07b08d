"""2-D convolution, NHWC input and HWIO kernel, with several implementations.

``impl="lax"`` is the reference (``lax.conv_general_dilated``); the others reformulate
the convolution as matmuls (XLA's fastest CPU op) with hand-written backward passes:

==============  ==============================================================  =============
impl            idea                                                            supports
==============  ==============================================================  =============
``lax``         XLA's convolution                                               everything
``im2col``      patch tensor (kh*kw strided slices) @ reshaped kernel: 1 matmul everything
``shifted_sum`` one matmul per kernel tap, summed; no patch tensor              everything
``winograd``    F(2x2, 3x3): 2.25x fewer multiplies via 16 batched matmuls      3x3, s=1, d=1
``fft``         products in the frequency domain (rfft2); for large kernels     d=1, groups=1
==============  ==============================================================  =============

Unsupported arguments raise a ``ValueError`` naming the implementation and the argument.
On CPU the matmul implementations run over cache-sized batch chunks / row bands
(``conv_chunking.py``); shape checks and padding arithmetic live in ``conv_geometry.py``.

``impl="auto"`` asks ``conv_auto.choose_conv_impl`` at trace time: a measured per-backend
table if present, else ``lax`` on GPU/TPU and a measured rule on CPU. Every entry of
``IMPLEMENTATIONS`` takes the same keyword arguments as ``conv2d_lax`` and is jit-able;
benchmarks time them through that dict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
from jax import lax

from vision_jax.ops.conv_auto import choose_conv_impl
from vision_jax.ops.conv_fft import conv2d_fft
from vision_jax.ops.conv_geometry import Padding, conv_geometry
from vision_jax.ops.conv_im2col import conv2d_im2col
from vision_jax.ops.conv_shifted_sum import conv2d_shifted_sum
from vision_jax.ops.conv_winograd import conv2d_winograd


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return tuple(value) if isinstance(value, Sequence) else (value, value)


def conv2d_lax(
    x: jax.Array,
    kernel: jax.Array,
    *,
    strides: Sequence[int] = (1, 1),
    padding: Padding = "SAME",
    dilation: Sequence[int] = (1, 1),
    groups: int = 1,
) -> jax.Array:
    """Reference implementation: XLA's convolution."""
    if not isinstance(padding, str):
        padding = tuple(tuple(p) for p in padding)
    return lax.conv_general_dilated(
        x,
        kernel,
        window_strides=_pair(strides),
        padding=padding,
        rhs_dilation=_pair(dilation),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=groups,
    )


IMPLEMENTATIONS: dict[str, Callable[..., jax.Array]] = {
    "lax": conv2d_lax,
    "im2col": conv2d_im2col,
    "shifted_sum": conv2d_shifted_sum,
    "winograd": conv2d_winograd,
    "fft": conv2d_fft,
}


def conv2d(
    x: jax.Array,
    kernel: jax.Array,
    *,
    strides: Sequence[int] = (1, 1),
    padding: Padding = "SAME",
    dilation: Sequence[int] = (1, 1),
    groups: int = 1,
    impl: str = "auto",
    flip_kernel: bool = False,
) -> jax.Array:
    """Convolves NHWC ``x`` with an HWIO ``kernel`` (cross-correlation, as in every CNN).

    ``kernel`` has shape (kh, kw, C_in // groups, C_out); ``padding`` is "SAME", "VALID"
    or ((top, bottom), (left, right)); ``impl`` is a key of ``IMPLEMENTATIONS`` or "auto".
    ``flip_kernel=True`` rotates the kernel by 180 degrees first, which turns the
    cross-correlation into true convolution as signal processing (and the course) defines
    it; the two differ only for kernels that are not point-symmetric, e.g. Sobel.
    """
    if flip_kernel:
        kernel = kernel[::-1, ::-1]
    # Pallas kernels join IMPLEMENTATIONS on backends that run them; deferred to the first
    # call because asking for the backend must not happen at import time.
    from vision_jax.ops import pallas

    pallas.register_implementations()
    if impl == "auto":
        # Validate first so bad arguments get the same one-line errors as a named impl.
        geom = conv_geometry(x.shape, kernel.shape, strides=strides, padding=padding,
                             dilation=dilation, groups=groups, impl="auto")
        impl = choose_conv_impl(x.shape, kernel.shape, geom.strides, geom.dilation, groups)
    if impl not in IMPLEMENTATIONS:
        raise ValueError(
            f"conv2d: unknown impl {impl!r}; choose one of {sorted(IMPLEMENTATIONS)} or 'auto'"
        )
    return IMPLEMENTATIONS[impl](
        x, kernel, strides=_pair(strides), padding=padding, dilation=_pair(dilation),
        groups=groups,
    )


def separable_conv2d(
    x: jax.Array,
    depthwise_kernel: jax.Array,
    pointwise_kernel: jax.Array,
    *,
    strides: Sequence[int] = (1, 1),
    padding: Padding = "SAME",
    dilation: Sequence[int] = (1, 1),
    impl: str = "auto",
) -> jax.Array:
    """Depthwise-separable convolution (MobileNet / Xception): depthwise, then 1x1 pointwise.

    ``depthwise_kernel`` is (kh, kw, 1, C * m) for channel multiplier m (groups = C);
    ``pointwise_kernel`` is (1, 1, C * m, C_out). ``impl`` picks the depthwise
    implementation; the pointwise step is a 1x1 convolution, i.e. one plain matmul for
    every implementation, so it is written as one.
    """
    channels = x.shape[-1]
    if depthwise_kernel.ndim != 4 or depthwise_kernel.shape[2] != 1:
        raise ValueError(
            "separable_conv2d: depthwise_kernel must be (kh, kw, 1, C * multiplier); "
            f"got shape {depthwise_kernel.shape}"
        )
    if depthwise_kernel.shape[3] % channels:
        raise ValueError(
            f"separable_conv2d: depthwise_kernel's last dim {depthwise_kernel.shape[3]} must be "
            f"a multiple of the input's {channels} channels"
        )
    if pointwise_kernel.ndim != 4 or pointwise_kernel.shape[:3] != (
        1, 1, depthwise_kernel.shape[3]
    ):
        raise ValueError(
            f"separable_conv2d: pointwise_kernel must be (1, 1, {depthwise_kernel.shape[3]}, "
            f"C_out); got shape {pointwise_kernel.shape}"
        )
    depthwise = conv2d(
        x, depthwise_kernel, strides=strides, padding=padding, dilation=dilation,
        groups=channels, impl=impl,
    )
    return jnp.einsum("nhwc,co->nhwo", depthwise, pointwise_kernel[0, 0])
