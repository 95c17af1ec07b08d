"""Winograd F(2x2, 3x3) convolution (Lavin & Gray, "Fast Algorithms for Convolutional
Neural Networks", 2016), for 3x3 kernels with stride 1 and dilation 1.

The padded input is cut into overlapping 4x4 tiles (stride 2); each tile d and the kernel
g are moved to the Winograd domain, V = B^T d B and U = G g G^T, where the 2x2 output
tile is A^T (U * V) A. Summed over input channels, U * V becomes 16 independent matmuls
(one per Winograd-domain position) of (tiles, C_in) x (C_in, C_out): 2.25x fewer
multiplies than direct convolution, paid for with cheap +-1 transform adds.

The input and output transforms are explicit +-1 adds of strided slices (not small
matmuls), which XLA fuses into a few elementwise loops; the kernel transform is one
matmul with kron(G, G). The backward pass is a custom VJP (see ``_backward``): the input
gradient is another Winograd convolution and the kernel gradient is one matmul per tap.
On CPU both passes run over cache-sized batch chunks / row bands (``conv_chunking``).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from vision_jax.ops.conv_geometry import ConvGeometry, conv_geometry, pad_input
from vision_jax.ops.conv_kernel import register_conv
from vision_jax.ops.conv_matmul import batched_matmul
from vision_jax.ops.conv_shifted_sum import tap_kernel_gradient

# Correlation form (no kernel flip), as CNN layers use.
_B_T = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))
_A_T = ((1, 1, 1, 0), (0, 1, -1, -1))
# Row i*4+j, column a*3+b: G[i, a] * G[j, b], so kron(G, G) @ vec(k) = vec(G k G^T).
_G_KRON_G = np.kron(np.asarray(_G), np.asarray(_G))


def winograd_unsupported_reason(
    kernel_size: Sequence[int], strides: Sequence[int], dilation: Sequence[int], groups: int
) -> str | None:
    """Why F(2x2, 3x3) cannot run these arguments, or None if it can (any padding, groups)."""
    del groups  # grouped convolutions are fine: one batched matmul per group
    problems = []
    if tuple(kernel_size) != (3, 3):
        problems.append(f"kernel size={tuple(kernel_size)}")
    if tuple(strides) != (1, 1):
        problems.append(f"strides={tuple(strides)}")
    if tuple(dilation) != (1, 1):
        problems.append(f"dilation={tuple(dilation)}")
    if not problems:
        return None
    return (
        "conv2d impl='winograd' supports only 3x3 kernels with stride 1 and dilation 1; "
        f"got {', '.join(problems)}. Use impl='im2col' or 'auto'."
    )


def _combine(coefficients: Sequence[float], terms: Sequence[jax.Array]) -> jax.Array:
    """sum(c * t) skipping zero coefficients and multiplies by +-1."""
    total = None
    for c, term in zip(coefficients, terms, strict=True):
        if c == 0:
            continue
        if c == 1:
            total = term if total is None else total + term
        elif c == -1:
            total = -term if total is None else total - term
        else:
            scaled = term * jnp.asarray(c, term.dtype)
            total = scaled if total is None else total + scaled
    return total


def _transform_rows_then_cols(matrix_t, grid):
    """matrix_t @ grid @ matrix_t^T for a grid (list of lists) of same-shape arrays."""
    n_cols = len(grid[0])
    rows = [[_combine(r, [grid[a][b] for a in range(len(grid))]) for b in range(n_cols)]
            for r in matrix_t]
    return [[_combine(c, row) for c in matrix_t] for row in rows]


def _winograd_domain_input(x: jax.Array, geom: ConvGeometry, tiles_h: int, tiles_w: int):
    """V = B^T d B for every overlapping 4x4 input tile d (stride 2): (16 * G, tiles, C/G),
    group-major for the batched GEMM.

    Rows first, on 4 whole-width stride-2 row slices of the padded input, then columns on
    each of the 4 results. (Cutting the 16 tile elements out one by one compiled into 17
    separate XLA:CPU fusions, 2.7x slower to compile and 1.3-3x slower to run.)
    """
    padded = pad_input(
        x, geom,
        extra_h=2 * tiles_h + 2 - geom.padded_h,
        extra_w=2 * tiles_w + 2 - geom.padded_w,
    )
    n, _, width, c = padded.shape
    row_taps = [
        lax.slice(padded, (0, a, 0, 0), (n, a + 2 * tiles_h - 1, width, c), (1, 2, 1, 1))
        for a in range(4)
    ]
    v = []
    for row in (_combine(coefficients, row_taps) for coefficients in _B_T):
        col_taps = [
            lax.slice(row, (0, 0, b, 0), (n, tiles_h, b + 2 * tiles_w - 1, c), (1, 1, 2, 1))
            for b in range(4)
        ]
        v.append(jnp.stack([_combine(coefficients, col_taps) for coefficients in _B_T]))
    g, cg = geom.groups, geom.in_c_per_group
    v = jnp.stack(v).reshape(16, -1, g, cg)  # (i, j) Winograd position, tile, group, channel
    return v.transpose(0, 2, 1, 3).reshape(16 * g, -1, cg)


def _winograd_domain_kernel(kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
    """U = G k G^T for every (in, out) channel pair: (16 * G, C/G, O/G).

    One (16, 9) @ (9, C*O) matmul with kron(G, G) on the HWIO kernel as stored. (A
    two-sided einsum transposed every 512x512 plane and took longer than the whole
    convolution on VGG's (3, 3, 512, 512) kernel; 16 elementwise adds cost 16 fusions of
    compile time.)
    """
    g, cg, og = geom.groups, geom.in_c_per_group, geom.out_c_per_group
    u = jnp.asarray(_G_KRON_G, kernel.dtype) @ kernel.reshape(9, cg * geom.out_c)
    return u.reshape(16, cg, g, og).transpose(0, 2, 1, 3).reshape(16 * g, cg, og)


def _forward(x: jax.Array, kernel: jax.Array, geom: ConvGeometry) -> jax.Array:
    tiles_h, tiles_w = -(-geom.out_h // 2), -(-geom.out_w // 2)
    n, g = geom.batch, geom.groups
    m = batched_matmul(
        _winograd_domain_input(x, geom, tiles_h, tiles_w), _winograd_domain_kernel(kernel, geom)
    )
    m = m.reshape(4, 4, g, n * tiles_h * tiles_w, geom.out_c_per_group)
    m = [[m[i, j].transpose(1, 0, 2).reshape(n, tiles_h, tiles_w, geom.out_c) for j in range(4)]
         for i in range(4)]
    # Y = A^T M A: the 2x2 output tiles, interleaved back onto the output grid.
    y = _transform_rows_then_cols(_A_T, m)
    y = jnp.stack([jnp.stack(row, axis=3) for row in y], axis=2)  # (N, th, 2, tw, 2, O)
    y = y.reshape(n, 2 * tiles_h, 2 * tiles_w, geom.out_c)
    return y[:, : geom.out_h, : geom.out_w, :]


def _backward(x, kernel, grad, geom):
    """The input gradient is again a 3x3 stride-1 correlation, so it runs through Winograd
    too: the output gradient, padded by (2 - pad), with the kernel flipped and in/out swapped.
    (Autodiff of the forward transforms was measured 10-50x slower on CPU.)"""
    (top, _), (left, _) = geom.padding
    g, cg, og = geom.groups, geom.in_c_per_group, geom.out_c_per_group
    flipped = kernel[::-1, ::-1].reshape(3, 3, cg, g, og).transpose(0, 1, 4, 3, 2)
    flipped = flipped.reshape(3, 3, og, g * cg)
    grad_padding = (
        (2 - top, geom.in_h + top - geom.out_h),
        (2 - left, geom.in_w + left - geom.out_w),
    )
    grad_geom = conv_geometry(
        grad.shape, flipped.shape, padding=grad_padding, groups=g, impl="winograd"
    )
    return _forward(grad, flipped, grad_geom), tap_kernel_gradient(x, grad, geom)


def _tile_elements_per_row(geom: ConvGeometry) -> int:
    """Winograd-domain tiles: 16 values per 2x2 output tile (8 per output row and tile
    column), for inputs and for outputs."""
    return 8 * -(-geom.out_w // 2) * max(geom.in_c, geom.out_c)


conv2d_winograd = register_conv(
    "winograd", _forward, _backward, unsupported=winograd_unsupported_reason,
    temp_elements_per_output_row=_tile_elements_per_row, band_multiple=2,
    doc="F(2x2, 3x3) Winograd convolution; 3x3 kernels, stride 1, dilation 1, any padding "
        "and groups.")
