"""What ``impl="auto"`` runs for pooling, per backend and shape, and the auto table's format.

On CPU the rule is fixed by measurement (``python -m benchmarks.kernels``): ``reshape`` when
the windows tile the image (stride == window), ``strided`` otherwise; both avoid
``select_and_scatter``, the slow CPU gradient of ``reduce_window``.

On GPU and TPU the choice comes from the auto table the benchmark writes, and is ``lax``
(XLA's own ``reduce_window``, correct for every geometry) for shapes it has not measured.

Auto-table format: a JSON object ``{"entries": [entry, ...]}``, one entry per measured
(backend, op, shape, dtype)::

    {"backend": "gpu", "op": "max_pool",
     "key": "x=128x26x26x32 window=2x2 strides=2x2 padding=VALID dtype=float32",
     "impl": "reshape"}

- ``backend``: ``jax.default_backend()`` of the machine that measured it.
- ``op``: ``"max_pool"`` / ``"avg_pool"`` (the benchmark writes ``"conv2d"`` rows the same way).
- ``key``: ``table_key(shape, dtype)``, the benchmark record's ``shape`` plus the dtype name;
  for pooling the shape is ``PoolGeometry.describe()``. Matching is exact.
- ``impl``: the registry name with the fastest forward+backward pass (training is the use).

The table is ``$VISION_JAX_AUTO_TABLE`` if set, else ``benchmarks/results/auto_table.json`` in
the source checkout; a missing file means an empty table.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import jax
import jax.numpy as jnp

from vision_jax.ops.pool_geometry import PoolGeometry

AUTO_TABLE_ENV = "VISION_JAX_AUTO_TABLE"
ENTRY_FIELDS = ("backend", "op", "key", "impl")


def default_table_path() -> Path:
    """``$VISION_JAX_AUTO_TABLE`` or the checkout's ``benchmarks/results/auto_table.json``."""
    override = os.environ.get(AUTO_TABLE_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "auto_table.json"


def table_key(shape: str, dtype) -> str:
    """The auto-table key of a benchmark ``shape`` string at ``dtype``."""
    return f"{shape} dtype={jnp.dtype(dtype).name}"


def read_entries(path: Path) -> list[dict[str, str]]:
    """The entries of an auto table; [] if the file does not exist."""
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text())["entries"]
        if not all(isinstance(e, dict) and set(ENTRY_FIELDS) <= set(e) for e in entries):
            raise ValueError
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"auto table {path}: not {{'entries': [{{{', '.join(ENTRY_FIELDS)}}}]}}; "
                         "delete it or re-run `python -m benchmarks.kernels`") from error
    return entries


@functools.cache
def _lookup_table(path: Path) -> Mapping[tuple[str, str, str], str]:
    # Read once per process: auto is resolved at trace time, once per compiled shape.
    return {(e["backend"], e["op"], e["key"]): e["impl"] for e in read_entries(path)}


def table_choice(backend: str, op: str, key: str, path: Path | None = None) -> str | None:
    """The measured winner for (backend, op, key), or None if the table has no such entry."""
    return _lookup_table(path or default_table_path()).get((backend, op, key))


def write_entries(path: Path, entries: Iterable[Mapping[str, str]]) -> None:
    """Merges ``entries`` into the table at ``path``: new rows replace old ones with the same
    (backend, op, key), rows of other backends and shapes are kept."""
    merged = {(e["backend"], e["op"], e["key"]): dict(e) for e in read_entries(path)}
    for entry in entries:
        merged[(entry["backend"], entry["op"], entry["key"])] = {f: entry[f] for f in ENTRY_FIELDS}
    rows = [merged[k] for k in sorted(merged)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"entries": rows}, indent=1) + "\n")
    _lookup_table.cache_clear()


def choose_pool_impl(op: str, geom: PoolGeometry, dtype, available: Iterable[str]) -> str:
    """The implementation ``impl="auto"`` runs for ``op`` on this backend and shape."""
    backend = jax.default_backend()
    if backend == "cpu":
        return "reshape" if geom.tiles else "strided"
    choice = table_choice(backend, op, table_key(geom.describe(), dtype))
    return choice if choice in set(available) else "lax"
