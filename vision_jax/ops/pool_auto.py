"""What ``impl="auto"`` runs for pooling, per backend and shape.

On CPU the rule is fixed by measurement (``python -m benchmarks.kernels``; forward+backward,
2-core AVX-512 machine): ``reshape`` when the windows tile the image exactly (stride ==
window, no rows or columns cropped), ``strided`` otherwise; both avoid
``select_and_scatter``, the slow CPU gradient of ``reduce_window`` (20-80x faster on the
MNIST/VGG/U-Net 2x2 pools, 4-10x on ResNet's 3x3/2 pool at batch 8). Cropping tiles (e.g.
11 -> 5) go to ``strided`` (2x faster than ``reshape`` there). The exception is overlapping
windows at batch 1, where XLA:CPU's code for the fused strided backward runs ~1.5x slower
than ``lax``'s ``select_and_scatter``: those stay on ``lax``.

On GPU and TPU the choice comes from the measured auto table, and is ``lax`` (XLA's own
``reduce_window``, correct for every geometry) for shapes it has not measured.

The auto table is the one shipped in the package (``vision_jax.ops.auto_table``, written by
``python -m benchmarks.kernels``); pooling records are ``{"backend", "op", "signature",
"best_impl"}`` like convolution records::

    {"backend": "gpu", "op": "max_pool",
     "signature": "x=128x26x26x32 window=2x2 strides=2x2 padding=VALID dtype=float32",
     "best_impl": "reshape"}

with ``op`` ``"max_pool"`` or ``"avg_pool"``, ``signature`` = ``pool_signature(shape, dtype)``
(the benchmark record's ``shape``, i.e. ``PoolGeometry.describe()``, plus the dtype; matched
exactly) and ``best_impl`` the registry name with the fastest forward+backward pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import jax
import jax.numpy as jnp

from vision_jax.ops import auto_table
from vision_jax.ops.pool_geometry import PoolGeometry


def pool_signature(shape: str, dtype: Any) -> str:
    """The auto-table key of a pooling benchmark ``shape`` string at ``dtype``."""
    return f"{shape} dtype={jnp.dtype(dtype).name}"


def auto_pool_choice(op: str, geom: PoolGeometry, dtype: Any, available: Iterable[str], *,
                     backend: str | None = None,
                     table_path: str | os.PathLike | None = None) -> tuple[str, str]:
    """The implementation ``impl="auto"`` runs for ``op`` on ``backend`` (default: the default
    backend) for this geometry and dtype, only one of ``available``, and where the choice came
    from (``"table"`` or ``"default"``); ``table_path`` defaults to the shipped table."""
    backend = backend or jax.default_backend()
    if backend == "cpu":
        if geom.tiles and not geom.crops:
            return "reshape", "default"
        return ("lax" if geom.overlapping and geom.batch == 1 else "strided"), "default"
    choice = auto_table.choice(backend, op, pool_signature(geom.describe(), dtype), table_path)
    return (choice, "table") if choice in set(available) else ("lax", "default")
