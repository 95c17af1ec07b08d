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

The auto table is the convolution's (``vision_jax.ops.conv_auto``: a JSON list of records at
``conv_auto.AUTO_TABLE_PATH``, written by ``python -m benchmarks.kernels``); pooling records
are ``{"backend", "op", "signature", "best_impl"}`` like convolution records::

    {"backend": "gpu", "op": "max_pool",
     "signature": "x=128x26x26x32 window=2x2 strides=2x2 padding=VALID dtype=float32",
     "best_impl": "reshape"}

with ``op`` ``"max_pool"`` or ``"avg_pool"``, ``signature`` = ``pool_signature(shape, dtype)``
(the benchmark record's ``shape``, i.e. ``PoolGeometry.describe()``, plus the dtype; matched
exactly) and ``best_impl`` the registry name with the fastest forward+backward pass.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

from vision_jax.ops.conv_auto import AUTO_TABLE_PATH
from vision_jax.ops.pool_geometry import PoolGeometry

POOL_OPS = ("max_pool", "avg_pool")
RECORD_FIELDS = ("backend", "op", "signature", "best_impl")


def pool_signature(shape: str, dtype: Any) -> str:
    """The auto-table key of a pooling benchmark ``shape`` string at ``dtype``."""
    return f"{shape} dtype={jnp.dtype(dtype).name}"


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of the auto table at ``path`` (all ops); [] if it does not exist."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        records = json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"auto table {path}: not valid JSON ({error}); delete it or re-run "
                         "`python -m benchmarks.kernels`") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"auto table {path}: expected a JSON list of records; delete it or "
                         "re-run `python -m benchmarks.kernels`")
    return records


def _check_pool_record(record: Mapping[str, Any], where: str) -> None:
    for field in RECORD_FIELDS:
        if not isinstance(record.get(field), str):
            raise ValueError(f"{where}: pooling record field {field!r} must be a string; got "
                             f"{record.get(field)!r}")


@functools.lru_cache(maxsize=8)
def _pool_table(path: str, mtime_ns: int) -> dict[tuple[str, str, str], str]:
    del mtime_ns  # part of the cache key only: a rewritten file is read again
    table = {}
    for index, record in enumerate(read_records(path)):
        if record.get("op") in POOL_OPS:
            _check_pool_record(record, f"auto table {path}: record {index}")
            table[(record["backend"], record["op"], record["signature"])] = record["best_impl"]
    return table


def table_choice(backend: str, op: str, signature: str,
                 path: str | os.PathLike | None = None) -> str | None:
    """The measured winner for (backend, op, signature), or None if the table has none."""
    path = Path(AUTO_TABLE_PATH if path is None else path)
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        return None
    return _pool_table(str(path), mtime_ns).get((backend, op, signature))


def choose_pool_impl(op: str, geom: PoolGeometry, dtype: Any, available: Iterable[str], *,
                     backend: str | None = None,
                     table_path: str | os.PathLike | None = None) -> str:
    """The implementation ``impl="auto"`` runs for ``op`` on ``backend`` (default: the default
    backend) for this geometry and dtype; only names in ``available`` are returned."""
    backend = backend or jax.default_backend()
    if backend == "cpu":
        if geom.tiles and not geom.crops:
            return "reshape"
        return "lax" if geom.overlapping and geom.batch == 1 else "strided"
    choice = table_choice(backend, op, pool_signature(geom.describe(), dtype), table_path)
    return choice if choice in set(available) else "lax"
