"""The measured kernel table ``impl="auto"`` reads, shipped inside the package.

``vision_jax/ops/auto_table.json`` is package data: it is read with ``importlib.resources``,
so an installed wheel (not only a source checkout) runs the kernels the benchmarks chose.
``python -m benchmarks.kernels`` rewrites it in the checkout (``source_path()``).

It is a JSON list of records ``{"backend", "op", "signature", "best_impl", ...}``, one per
(backend, op, signature); ``op`` is ``"conv2d"`` (the default when absent; signature format
in ``conv_auto``), ``"max_pool"`` or ``"avg_pool"`` (``pool_auto``). Other keys (timings,
dtype) are kept and ignored.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import os
from pathlib import Path
from typing import Any

# The shipped table; tests point it elsewhere.
TABLE = importlib.resources.files("vision_jax.ops") / "auto_table.json"
KEY_FIELDS = ("backend", "op", "signature", "best_impl")


def source_path() -> Path:
    """The file the shipped table is read from, for writers (benchmarks in a checkout)."""
    return Path(str(TABLE))


def read_records(path: str | os.PathLike | None = None) -> list[dict[str, Any]]:
    """Every record (all ops) of the table at ``path`` (default: the shipped one); [] when
    there is no such file."""
    return [dict(record) for record in _read(path)[0]]


def choice(backend: str, op: str, signature: str,
           path: str | os.PathLike | None = None) -> str | None:
    """The measured winner for (backend, op, signature), or None if the table has none."""
    return _read(path)[1].get((backend, op, signature))


def _read(path: str | os.PathLike | None) -> tuple[tuple[dict[str, Any], ...], dict]:
    with importlib.resources.as_file(TABLE if path is None else Path(path)) as file:
        try:
            mtime_ns = file.stat().st_mtime_ns
        except FileNotFoundError:
            return (), {}
        return _parse(str(file), mtime_ns)


@functools.lru_cache(maxsize=8)
def _parse(path: str, mtime_ns: int) -> tuple[tuple[dict[str, Any], ...], dict]:
    del mtime_ns  # part of the cache key only: a rewritten file is read again
    try:
        records = json.loads(Path(path).read_text())
    except ValueError as error:
        raise ValueError(f"auto table {path}: not valid JSON ({error}); delete it or re-run "
                         "`python -m benchmarks.kernels`") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ValueError(f"auto table {path}: expected a JSON list of records; delete it or "
                         "re-run `python -m benchmarks.kernels`")
    index = {}
    for number, record in enumerate(records):
        record = {"op": "conv2d", **record}
        for field in KEY_FIELDS:
            if not isinstance(record.get(field), str):
                raise ValueError(f"auto table {path}: record {number} field {field!r} must be a "
                                 f"string; got {record.get(field)!r}")
        index[(record["backend"], record["op"], record["signature"])] = record["best_impl"]
    return tuple(records), index
