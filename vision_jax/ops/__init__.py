"""Convolution, pooling and box kernels; `lax` is the reference for each."""

from vision_jax.ops import filters
from vision_jax.ops.conv import conv2d, separable_conv2d
from vision_jax.ops.pool import (
    avg_pool,
    channel_max_pool,
    global_avg_pool,
    global_max_pool,
    max_pool,
)

__all__ = [
    "avg_pool",
    "channel_max_pool",
    "conv2d",
    "filters",
    "global_avg_pool",
    "global_max_pool",
    "max_pool",
    "separable_conv2d",
]
