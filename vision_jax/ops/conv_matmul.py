"""The grouped matmul every matmul-based convolution reduces to.

Grouped convolution multiplies each channel group by its own kernel block. Written as
an einsum with the group axis in the middle ('mgc,gco->mgo'), XLA:CPU picks layouts
that transpose the large operand on the way in and the result on the way out (measured:
a 5-10x slowdown for a 16-way Winograd batch). Here the batch (group) axis is moved to
the front explicitly, the layout every backend's batched GEMM wants, and groups == 1
skips the batch axis altogether so it is a plain 2-D matmul.
"""

from __future__ import annotations

import jax
from jax import lax


def batched_matmul(lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    """(B, M, K) x (B, K, N) -> (B, M, N), batch axis leading."""
    return lax.dot_general(lhs, rhs, (((2,), (1,)), ((0,), (0,))))


def grouped_matmul(lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    """(M, G, K) x (G, K, N) -> (M, G, N): an independent (M, K) @ (K, N) per group."""
    m, groups, k = lhs.shape
    n = rhs.shape[2]
    if groups == 1:
        return (lhs.reshape(m, k) @ rhs.reshape(k, n)).reshape(m, 1, n)
    return batched_matmul(lhs.transpose(1, 0, 2), rhs).transpose(1, 0, 2)


def grouped_matmul_t(lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    """(M, G, N) x (G, K, N) -> (M, G, K): ``grouped_matmul`` with ``rhs`` transposed."""
    m, groups, n = lhs.shape
    k = rhs.shape[1]
    if groups == 1:
        return (lhs.reshape(m, n) @ rhs.reshape(k, n).T).reshape(m, 1, k)
    out = lax.dot_general(lhs.transpose(1, 0, 2), rhs, (((2,), (2,)), ((0,), (0,))))
    return out.transpose(1, 0, 2)


def grouped_matmul_tn(lhs: jax.Array, rhs: jax.Array) -> jax.Array:
    """(M, G, K) x (M, G, N) -> (G, K, N): lhs^T @ rhs per group, contracting over M."""
    m, groups, k = lhs.shape
    n = rhs.shape[2]
    if groups == 1:
        return (lhs.reshape(m, k).T @ rhs.reshape(m, n)).reshape(1, k, n)
    return lax.dot_general(
        lhs.transpose(1, 0, 2), rhs.transpose(1, 0, 2), (((1,), (1,)), ((0,), (0,)))
    )
