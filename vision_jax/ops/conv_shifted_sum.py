"""Shifted-sum convolution: one matmul per kernel tap, accumulated.

Each tap (i, j) multiplies the strided slice of the padded input it sees, (N, Ho, Wo, C),
by its (C, O) kernel slice, and the kh*kw products are summed. Unlike im2col no
(N, Ho, Wo, kh*kw*C) patch tensor is built, so peak memory stays at one slice; the price
is kh*kw smaller matmuls instead of one big one.

The custom VJP (``conv_kernel.conv_kernel``) keeps only ``x`` and ``kernel`` between
the passes (autodiff would keep every tap's slice, i.e. the patch tensor im2col avoids):
the backward pass re-slices ``x`` for the kernel gradient and puts each tap's input
gradient back onto the padded grid with an interior-padded ``lax.pad``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vision_jax.ops.conv_geometry import (
    ConvGeometry,
    pad_input,
    tap_slice,
    unpad_input,
    untap,
)
from vision_jax.ops.conv_kernel import register_conv
from vision_jax.ops.conv_matmul import grouped_matmul, grouped_matmul_t, grouped_matmul_tn


def _tap_kernel(kernel: jax.Array, geom: ConvGeometry, i: int, j: int) -> jax.Array:
    """Kernel slice of tap (i, j) as (groups, C_in/groups, C_out/groups)."""
    cg, g, og = geom.in_c_per_group, geom.groups, geom.out_c_per_group
    return kernel[i, j].reshape(cg, g, og).transpose(1, 0, 2)


def _grouped_rows(a: jax.Array, groups: int) -> jax.Array:
    """(N, H, W, C) -> (N*H*W, groups, C/groups)."""
    return a.reshape(-1, groups, a.shape[3] // groups)


def _taps(geom: ConvGeometry):
    return [(i, j) for i in range(geom.kernel_h) for j in range(geom.kernel_w)]


def tap_kernel_gradient(x: jax.Array, grad: jax.Array, geom: ConvGeometry) -> jax.Array:
    """d(loss)/d(kernel) in HWIO: per tap, (its input slice)^T @ grad, contracting over pixels.

    Also the kernel gradient of the Winograd route, which has no cheaper form of its own.
    """
    padded = pad_input(x, geom)
    grad_rows = _grouped_rows(grad, geom.groups)
    per_tap = []
    for i, j in _taps(geom):
        patch = _grouped_rows(tap_slice(padded, geom, i, j), geom.groups)
        tap_grad = grouped_matmul_tn(patch, grad_rows)  # (G, C/G, O/G)
        per_tap.append(tap_grad.transpose(1, 0, 2).reshape(geom.in_c_per_group, geom.out_c))
    return jnp.stack(per_tap).reshape(
        geom.kernel_h, geom.kernel_w, geom.in_c_per_group, geom.out_c
    )


def _forward(x: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
    padded = pad_input(x, geom)
    total = None
    for i, j in _taps(geom):
        patch = _grouped_rows(tap_slice(padded, geom, i, j), geom.groups)
        term = grouped_matmul(patch, _tap_kernel(kernel, geom, i, j))
        total = term if total is None else total + term
    return total.reshape(geom.batch, geom.out_h, geom.out_w, geom.out_c)


def _backward(x, kernel, grad, geom):
    grad_rows = _grouped_rows(grad, geom.groups)
    grad_padded = None
    for i, j in _taps(geom):
        grad_patch = grouped_matmul_t(grad_rows, _tap_kernel(kernel, geom, i, j))
        placed = untap(grad_patch.reshape(*grad.shape[:3], geom.in_c), geom, i, j)
        grad_padded = placed if grad_padded is None else grad_padded + placed
    return unpad_input(grad_padded, geom), tap_kernel_gradient(x, grad, geom)


def _slice_elements_per_row(geom: ConvGeometry) -> int:
    """One tap's input slice plus the running output sum."""
    return geom.out_w * (geom.in_c + geom.out_c)


conv2d_shifted_sum = register_conv(
    "shifted_sum", _forward, _backward, temp_elements_per_output_row=_slice_elements_per_row,
    doc="Sum over kernel taps of (shifted input slice) @ (tap's kernel); same coverage as lax.")
