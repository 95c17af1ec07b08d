"""FFT convolution: pointwise products in the frequency domain, for large kernels.

Direct convolution costs kh*kw multiplies per output and channel pair; the FFT route
costs O(log(H*W)) per pixel whatever the kernel size, so it wins for big kernels (7x7
and up) on large images. The padded input and the zero-extended kernel are taken to
the frequency domain with ``rfft2`` over (H, W); cross-correlation is X * conj(K) there,
summed over input channels (a batched complex matmul per frequency); ``irfft2`` brings
it back. With the FFT size equal to the padded input, circular wrap-around only touches
rows/cols past the last valid output, which are cropped. Stride s keeps every s-th
stride-1 output. bf16/f16 inputs are transformed in float32 (XLA has no half FFT).
Every step is linear, so autodiff gives the gradient directly.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from vision_jax.ops.conv_geometry import ConvGeometry, pad_input
from vision_jax.ops.conv_kernel import register_conv
from vision_jax.ops.conv_matmul import batched_matmul


def fft_unsupported_reason(
    kernel_size: Sequence[int], strides: Sequence[int], dilation: Sequence[int], groups: int
) -> str | None:
    """Why the FFT route cannot run these arguments, or None if it can (any kernel, stride)."""
    del kernel_size, strides  # any kernel size; stride s subsamples the stride-1 result
    problems = []
    if tuple(dilation) != (1, 1):
        problems.append(f"dilation={tuple(dilation)}")
    if groups != 1:
        problems.append(f"groups={groups}")
    if not problems:
        return None
    return (
        "conv2d impl='fft' supports only dilation 1 and groups 1; "
        f"got {', '.join(problems)}. Use impl='im2col' or 'auto'."
    )


def _forward(x: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
    out_dtype = jnp.result_type(x.dtype, kernel.dtype)
    compute_dtype = jnp.promote_types(out_dtype, jnp.float32)
    padded = pad_input(x, geom).astype(compute_dtype)
    size = (padded.shape[1], padded.shape[2])
    x_freq = jnp.fft.rfft2(padded, axes=(1, 2))
    k_freq = jnp.fft.rfft2(kernel.astype(compute_dtype), s=size, axes=(0, 1))
    # Per frequency, (N, C) @ (C, O): a batched matmul with the frequency axis leading.
    n, fh, fw, c = x_freq.shape
    y_freq = batched_matmul(
        x_freq.reshape(n, fh * fw, c).transpose(1, 0, 2),
        jnp.conj(k_freq).reshape(fh * fw, c, geom.out_c),
    )
    y_freq = y_freq.transpose(1, 0, 2).reshape(n, fh, fw, geom.out_c)
    y = jnp.fft.irfft2(y_freq, s=size, axes=(1, 2))
    (sh, sw) = geom.strides
    y = y[:, : (geom.out_h - 1) * sh + 1 : sh, : (geom.out_w - 1) * sw + 1 : sw, :]
    return y.astype(out_dtype)


conv2d_fft = register_conv(
    "fft", _forward, unsupported=fft_unsupported_reason,
    doc="FFT cross-correlation; any kernel size, stride and padding; dilation 1 and groups 1.")
