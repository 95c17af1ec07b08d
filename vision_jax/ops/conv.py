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

``impl="auto"`` asks ``conv_auto`` at trace time: the measured per-backend table shipped in
the package if it has the shape, else ``lax`` on GPU/TPU and a measured rule on CPU; the
choice is recorded for the run's ``kernels.json`` (``kernel_choices``). Implementations
register themselves in ``kernels.TABLES["conv2d"]`` (``conv_kernel.register_conv``); each
takes the same keyword arguments as ``conv2d_lax`` and is jit-able; benchmarks and tests
iterate ``kernels.implementations("conv2d")``. The Pallas kernel registers itself for GPU.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
from jax import lax

from vision_jax.ops import kernel_choices, kernels
from vision_jax.ops.conv_auto import auto_conv_choice, conv_signature
from vision_jax.ops.conv_geometry import ConvGeometry, Padding, conv_geometry
from vision_jax.ops.conv_kernel import register_conv


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return tuple(value) if isinstance(value, Sequence) else (value, value)


def _lax_forward(x: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
    return lax.conv_general_dilated(
        x, kernel, window_strides=geom.strides, padding=geom.padding,
        rhs_dilation=geom.dilation, dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=geom.groups,
    )


conv2d_lax = register_conv("lax", _lax_forward, doc="Reference implementation: XLA's convolution.")


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
    or ((top, bottom), (left, right)); ``impl`` is a registered implementation or "auto".
    ``flip_kernel=True`` rotates the kernel by 180 degrees first, which turns the
    cross-correlation into true convolution as signal processing (and the course) defines
    it; the two differ only for kernels that are not point-symmetric, e.g. Sobel.
    """
    if flip_kernel:
        kernel = kernel[::-1, ::-1]
    if impl == "auto":
        # Validate first so bad arguments get the same one-line errors as a named impl.
        geom = conv_geometry(x.shape, kernel.shape, strides=strides, padding=padding,
                             dilation=dilation, groups=groups, impl="auto")
        impl, source = auto_conv_choice(x.shape, kernel.shape, geom.strides, geom.dilation,
                                        groups)
        kernel_choices.note_choice("conv2d", conv_signature(
            x.shape, kernel.shape, geom.strides, geom.dilation, groups), impl, source)
    return kernels.lookup("conv2d", impl)(
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
