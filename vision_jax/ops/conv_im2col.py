"""im2col convolution: gather every kernel tap into one patch tensor, then ONE matmul.

Forward: the kh*kw strided slices of the padded input are concatenated on the channel
axis into patches (N, Ho, Wo, kh*kw*C_in) whose (tap, channel) order matches an HWIO
kernel reshaped to (kh*kw*C_in, C_out), so the convolution is a single dot_general.
Groups become a batched matmul over the group axis (depthwise: groups == C_in).

Backward (``jax.custom_vjp``): the kernel gradient is the one matmul patches^T @ grad,
the patch gradient is grad @ kernel^T, and the input gradient is its col2im: each tap's
slice of it is put back onto the padded grid with an interior-padded ``lax.pad`` and the
kh*kw pads are summed (XLA fuses them into one loop). Patches are rebuilt from ``x``
in the backward pass instead of being kept as a residual: rebuilding is a cheap copy,
keeping them costs kh*kw times the input's memory between the passes. On CPU both
passes run over cache-sized batch chunks (``conv_chunking``).
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


def im2col_patches(x: jax.Array, geom: ConvGeometry) -> jax.Array:
    """(N, H, W, C) -> (N, Ho, Wo, kh*kw*C), tap-major like a reshaped HWIO kernel."""
    padded = pad_input(x, geom)
    taps = [
        tap_slice(padded, geom, i, j)
        for i in range(geom.kernel_h)
        for j in range(geom.kernel_w)
    ]
    return taps[0] if len(taps) == 1 else jnp.concatenate(taps, axis=-1)


def col2im(patch_grad: jax.Array, geom: ConvGeometry) -> jax.Array:
    """Transpose of ``im2col_patches``: (N, Ho, Wo, kh*kw*C) -> (N, H, W, C)."""
    c = geom.in_c
    total = None
    for t in range(geom.taps):
        i, j = divmod(t, geom.kernel_w)
        placed = untap(patch_grad[..., t * c:(t + 1) * c], geom, i, j)
        total = placed if total is None else total + placed
    return unpad_input(total, geom)


def _group_patches(patches: jax.Array, geom: ConvGeometry) -> jax.Array:
    """(N, Ho, Wo, T*C) -> (M, G, T*C/G): each group's own (tap, channel) columns."""
    t, g, cg = geom.taps, geom.groups, geom.in_c_per_group
    m = patches.shape[0] * patches.shape[1] * patches.shape[2]
    return patches.reshape(m, t, g, cg).transpose(0, 2, 1, 3).reshape(m, g, t * cg)


def _ungroup_patches(grouped: jax.Array, geom: ConvGeometry, lead: tuple[int, ...]) -> jax.Array:
    """Inverse of ``_group_patches``."""
    t, g, cg = geom.taps, geom.groups, geom.in_c_per_group
    return grouped.reshape(-1, g, t, cg).transpose(0, 2, 1, 3).reshape(*lead, t * g * cg)


def _group_kernel(kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
    """HWIO (kh, kw, C/G, O) -> (G, T*C/G, O/G)."""
    t, g, cg, og = geom.taps, geom.groups, geom.in_c_per_group, geom.out_c_per_group
    return kernel.reshape(t, cg, g, og).transpose(2, 0, 1, 3).reshape(g, t * cg, og)


def _ungroup_kernel(grouped: jax.Array, geom: ConvGeometry) -> jax.Array:
    t, g, cg, og = geom.taps, geom.groups, geom.in_c_per_group, geom.out_c_per_group
    kernel = grouped.reshape(g, t, cg, og).transpose(1, 2, 0, 3)
    return kernel.reshape(geom.kernel_h, geom.kernel_w, cg, g * og)


def patches_times_kernel(patches: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
    """(N, Ho, Wo, T*C) x HWIO kernel -> (N, Ho, Wo, O): the one (grouped) matmul."""
    out = grouped_matmul(_group_patches(patches, geom), _group_kernel(kernel, geom))
    return out.reshape(*patches.shape[:3], geom.out_c)


def _grad_times_kernel_t(grad: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
    """grad (N, Ho, Wo, O) @ kernel^T -> patch gradient (N, Ho, Wo, T*C)."""
    lead = grad.shape[:3]
    grouped = grad.reshape(-1, geom.groups, geom.out_c_per_group)
    return _ungroup_patches(grouped_matmul_t(grouped, _group_kernel(kernel, geom)), geom, lead)


def _patches_t_times_grad(patches: jax.Array, grad: jax.Array, geom: ConvGeometry) -> jax.Array:
    """patches^T @ grad -> kernel gradient in HWIO."""
    grouped_grad = grad.reshape(-1, geom.groups, geom.out_c_per_group)
    return _ungroup_kernel(grouped_matmul_tn(_group_patches(patches, geom), grouped_grad), geom)


def _forward(x: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
    return patches_times_kernel(im2col_patches(x, geom), kernel, geom)


def kernel_gradient(x: jax.Array, grad: jax.Array, geom: ConvGeometry) -> jax.Array:
    """d(loss)/d(kernel) in HWIO: patches(x)^T @ grad, one matmul contracting over pixels."""
    return _patches_t_times_grad(im2col_patches(x, geom), grad, geom)


def _backward(x, kernel, grad, geom):
    grad_x = col2im(_grad_times_kernel_t(grad, kernel, geom), geom)
    return grad_x, kernel_gradient(x, grad, geom)


def _patch_elements_per_row(geom: ConvGeometry) -> int:
    return geom.out_w * geom.taps * geom.in_c


conv2d_im2col = register_conv(
    "im2col", _forward, _backward, temp_elements_per_output_row=_patch_elements_per_row,
    doc="im2col + one matmul; any stride, padding, dilation and groups.")
