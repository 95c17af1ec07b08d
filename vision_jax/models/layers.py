"""Small Flax building blocks that route convolution and pooling through `vision_jax.ops`.

The models never call `flax.linen.Conv` or `flax.linen.max_pool` directly: going through
`ops.conv2d` / `ops.max_pool` is what lets a config's ``conv_impl`` / ``pool_impl`` string pick
the kernel (XLA reference or a Pallas kernel) without touching the model code.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax.linen.dtypes import promote_dtype

from vision_jax import ops

Dtype = Any
Initializer = Any
Padding = str | tuple[tuple[int, int], tuple[int, int]]

# He et al. 2015 for layers followed by ReLU; fan_out as in the torchvision reference models,
# so that a residual branch starts with the same variance as the published training recipes.
he_normal_fan_out = nn.initializers.variance_scaling(2.0, "fan_out", "normal")
_ones = nn.initializers.ones_init()


def symmetric_padding(kernel_size: Sequence[int],
                      dilation: Sequence[int] = (1, 1)) -> tuple[tuple[int, int], ...]:
    """``((p, p), (p, p))`` with ``p = dilation * (k - 1) // 2`` for each spatial axis.

    Unlike ``"SAME"`` (which pads a stride-2 conv of an even image only at the bottom/right),
    this pads both sides equally, as the Caffe/PyTorch reference networks do.
    """
    return tuple((d * (k - 1) // 2, d * (k - 1) // 2)
                 for k, d in zip(kernel_size, dilation, strict=True))


class Conv(nn.Module):
    """2-D convolution: NHWC input, HWIO ``kernel`` param in ``param_dtype``, optional bias."""

    features: int
    kernel_size: tuple[int, int] = (3, 3)
    strides: tuple[int, int] = (1, 1)
    padding: Padding = "SAME"
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    use_bias: bool = True
    dtype: Dtype | None = None
    param_dtype: Dtype = jnp.float32
    kernel_init: Initializer = he_normal_fan_out
    bias_init: Initializer = nn.initializers.zeros_init()
    impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        in_features = x.shape[-1]
        if in_features % self.groups or self.features % self.groups:
            raise ValueError(
                f"Conv {self.name}: groups={self.groups} must divide both the input channels "
                f"({in_features}) and features ({self.features})"
            )
        kernel_shape = (*self.kernel_size, in_features // self.groups, self.features)
        kernel = self.param("kernel", self.kernel_init, kernel_shape, self.param_dtype)
        bias = (self.param("bias", self.bias_init, (self.features,), self.param_dtype)
                if self.use_bias else None)
        x, kernel, bias = promote_dtype(x, kernel, bias, dtype=self.dtype)
        y = ops.conv2d(x, kernel, strides=self.strides, padding=self.padding,
                       dilation=self.dilation, groups=self.groups, impl=self.impl)
        if bias is not None:
            y = y + bias
        return y


class MaxPool(nn.Module):
    """Spatial max pooling as a module, so that it shows up (with its shape) in model summaries."""

    window: tuple[int, int] = (2, 2)
    strides: tuple[int, int] | None = None
    padding: Padding = "VALID"
    impl: str = "auto"

    def __call__(self, x: jax.Array) -> jax.Array:
        return ops.max_pool(x, self.window, strides=self.strides, padding=self.padding,
                            impl=self.impl)


class AdaptiveAvgPool(nn.Module):
    """Average pooling to a fixed ``output_size`` map, as ``torch.nn.AdaptiveAvgPool2d``.

    Output cell ``i`` averages input rows ``floor(i * H / out)`` to ``ceil((i + 1) * H / out)``
    (exclusive), so bins may overlap when ``H`` is not a multiple of ``out``; an input already
    of the output size passes through unchanged. The bins are static, so this is plain slicing.
    """

    output_size: tuple[int, int] = (7, 7)

    def __call__(self, x: jax.Array) -> jax.Array:
        height, width = x.shape[1:3]
        out_h, out_w = self.output_size
        if (height, width) == (out_h, out_w):
            return x
        rows = [_bin(i, height, out_h) for i in range(out_h)]
        cols = [_bin(j, width, out_w) for j in range(out_w)]
        cells = [[x[:, r0:r1, c0:c1].mean(axis=(1, 2)) for c0, c1 in cols] for r0, r1 in rows]
        return jnp.stack([jnp.stack(row, axis=1) for row in cells], axis=1)


def _bin(index: int, size: int, count: int) -> tuple[int, int]:
    return (index * size) // count, -((-(index + 1) * size) // count)


class GlobalAvgPool(nn.Module):
    """Mean over H and W: (N, H, W, C) -> (N, C)."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return ops.global_avg_pool(x)


# Mesh axes batch statistics are averaged over; set only by `batch_norm_across`.
_BATCH_NORM_AXES: contextvars.ContextVar = contextvars.ContextVar("batch_norm_axes",
                                                                  default=None)


@contextlib.contextmanager
def batch_norm_across(axis_name: str | tuple[str, ...]) -> Iterator[None]:
    """Every `batch_norm` built inside averages its statistics over the named axes.

    For per-device code (``shard_map``, ``pmap``) where each device sees only its slice of
    the batch; the models stay unaware of how the batch is split.
    """
    token = _BATCH_NORM_AXES.set(axis_name)
    try:
        yield
    finally:
        _BATCH_NORM_AXES.reset(token)


# PyTorch's BatchNorm epsilon (and the torchvision reference models'); Keras' layer default is
# 1e-3 and keras.applications' ResNets use 1.001e-5, so imported models set theirs.
BATCH_NORM_EPSILON = 1e-5


def batch_norm(train: bool, dtype: Dtype | None, param_dtype: Dtype, name: str,
               scale_init: Initializer = _ones,
               epsilon: float = BATCH_NORM_EPSILON) -> nn.BatchNorm:
    """BatchNorm with the reference hyper-parameters (momentum 0.9, epsilon 1e-5 by default).

    Statistics over the batch axis of a global (sharded) array are already global under
    ``jit``, so no ``axis_name`` is needed for data parallelism; per-device code wraps its
    ``model.apply`` in `batch_norm_across`.
    """
    return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=epsilon, dtype=dtype,
                        param_dtype=param_dtype, scale_init=scale_init, name=name,
                        axis_name=_BATCH_NORM_AXES.get())


def check_spatial(x: jax.Array, minimum: int, model: str, where: str) -> None:
    """Fails at trace time (before compiling) when a feature map has shrunk below ``minimum``."""
    height, width = x.shape[1:3]
    if height < minimum or width < minimum:
        raise ValueError(
            f"{model}: the feature map {where} is {height}x{width}; the input image is too small "
            "for this model's down-sampling: use a larger image size (config.image_size)"
        )


def to_float32_logits(logits: jax.Array) -> jax.Array:
    """Losses and metrics are computed in float32 whatever the compute dtype."""
    return logits.astype(jnp.float32)
