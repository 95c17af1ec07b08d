"""Accelerator kernels written with ``jax.experimental.pallas``.

``conv2d`` (direct stride-1 convolution) and ``max_pool`` (non-overlapping windows) target
GPUs through Pallas' Triton lowering; ``interpret=True`` runs them anywhere (tests do, on
CPU). Importing this package registers them as impl ``"pallas"`` of ``conv2d`` and
``max_pool`` for the backends in ``SUPPORTED_BACKENDS``; on others they are not offered.
TPU is not supported: the kernels' per-row blocks do not meet Mosaic's (8, 128) tiling.
"""

from __future__ import annotations

from vision_jax.ops.pallas.conv import SUPPORTED_BACKENDS, conv2d
from vision_jax.ops.pallas.pool import max_pool

__all__ = ["SUPPORTED_BACKENDS", "conv2d", "max_pool"]
