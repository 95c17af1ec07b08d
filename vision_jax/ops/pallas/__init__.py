"""Accelerator kernels written with ``jax.experimental.pallas``.

``conv2d`` (direct stride-1 convolution) and ``max_pool`` (non-overlapping windows) target
GPUs through Pallas' Triton lowering; ``interpret=True`` runs them anywhere (tests do, on
CPU). They join the ``conv2d`` / ``max_pool`` registries as impl ``"pallas"`` only where
they compile: ``register_implementations()`` adds them on GPU and does nothing elsewhere.
TPU is not registered: the kernels' per-row blocks do not meet Mosaic's (8, 128) tiling.
"""

from __future__ import annotations

import functools

import jax

from vision_jax.ops.pallas.conv import conv2d
from vision_jax.ops.pallas.pool import max_pool

SUPPORTED_BACKENDS = ("gpu",)


def supported() -> bool:
    """Whether the default backend compiles these kernels (without ``interpret``)."""
    return jax.default_backend() in SUPPORTED_BACKENDS


def _conv2d_impl(x, kernel, *, strides, padding, dilation, groups):
    return conv2d(x, kernel, strides=strides, padding=padding, dilation=dilation, groups=groups)


def _max_pool_impl(x, window, *, strides=None, padding="VALID"):
    return max_pool(x, window, strides=strides, padding=padding)


@functools.cache
def register_implementations() -> bool:
    """Adds impl ``"pallas"`` to ``conv.IMPLEMENTATIONS`` and ``pool.MAX_POOL_IMPLEMENTATIONS``
    when the backend supports it; returns whether it did. Idempotent and cheap after the first
    call, but it initialises JAX's backends: call it after ``jax.distributed.initialize``."""
    if not supported():
        return False
    from vision_jax.ops import conv, pool

    conv.IMPLEMENTATIONS.setdefault("pallas", _conv2d_impl)
    pool.MAX_POOL_IMPLEMENTATIONS.setdefault("pallas", _max_pool_impl)
    return True


__all__ = ["conv2d", "max_pool", "register_implementations", "supported"]
