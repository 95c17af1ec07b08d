"""Which convolution implementation ``conv2d(..., impl="auto")`` runs.

The choice is made in Python at trace time from static shapes, never inside the traced
computation: first a measured table, then a per-backend default.

Auto table
----------
``benchmarks/results/auto_table.json`` (optional; ``AUTO_TABLE_PATH``) is a JSON list of
records, one per (backend, convolution signature)::

    [
      {"backend": "cpu", "op": "conv2d",
       "signature": "x=128x14x14x32,k=3x3x32x64,s=1x1,d=1x1,g=1",
       "best_impl": "im2col"},
      ...
    ]

- ``backend``: ``jax.default_backend()`` of the machine that measured it ("cpu", "gpu",
  "tpu").
- ``op``: always ``"conv2d"`` (other ops may share the file later; they are skipped).
- ``signature``: ``conv_signature(x_shape, kernel_shape, strides, dilation, groups)``,
  i.e. NHWC input shape, HWIO kernel shape, strides, dilation and groups. Padding and
  dtype are not part of it.
- ``best_impl``: a key of ``vision_jax.ops.conv.IMPLEMENTATIONS``; the writer should pick
  the fastest *forward+backward* time (training is what ``auto`` serves).
- Any other keys (timings, dtype, ...) are kept in the file and ignored here.

Write it with ``write_auto_table(records, path)``; a record may give ``signature`` or the
fields ``x_shape``, ``kernel_shape``, ``strides``, ``dilation``, ``groups`` from which it
is computed. A (backend, signature) may appear only once. A table entry whose
implementation cannot run the arguments (e.g. winograd for a 5x5 kernel) is ignored.

Defaults (no table entry)
-------------------------
On GPU and TPU: ``lax`` (XLA's convolution maps onto cuDNN / the MXU). On CPU: the
measured fastest general implementation, see ``_cpu_default``.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax

from vision_jax.ops.conv_fft import fft_unsupported_reason
from vision_jax.ops.conv_winograd import winograd_unsupported_reason

AUTO_TABLE_PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "auto_table.json"

# Implementations that cannot run every argument combination, and why.
_SUPPORT_CHECKS = {"winograd": winograd_unsupported_reason, "fft": fft_unsupported_reason}


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(int(v) for v in value)


def conv_signature(
    x_shape: Sequence[int],
    kernel_shape: Sequence[int],
    strides: int | Sequence[int] = (1, 1),
    dilation: int | Sequence[int] = (1, 1),
    groups: int = 1,
) -> str:
    """Canonical table key, e.g. ``"x=128x14x14x32,k=3x3x32x64,s=1x1,d=1x1,g=1"``."""
    def dims(values):
        return "x".join(str(int(v)) for v in values)

    return (
        f"x={dims(x_shape)},k={dims(kernel_shape)},s={dims(_pair(strides))},"
        f"d={dims(_pair(dilation))},g={int(groups)}"
    )


def unsupported_reason(
    impl: str,
    kernel_shape: Sequence[int],
    strides: int | Sequence[int] = (1, 1),
    dilation: int | Sequence[int] = (1, 1),
    groups: int = 1,
) -> str | None:
    """Why ``impl`` cannot run these arguments, or None if it can."""
    check = _SUPPORT_CHECKS.get(impl)
    if check is None:
        return None
    return check(tuple(kernel_shape[:2]), _pair(strides), _pair(dilation), groups)


def _known_impls() -> list[str]:
    # Imported here: conv.py imports this module to serve impl="auto".
    from vision_jax.ops.conv import IMPLEMENTATIONS

    return sorted(IMPLEMENTATIONS)


def _canonical_record(record: Mapping[str, Any], where: str) -> dict[str, Any]:
    for field in ("backend", "best_impl"):
        if not isinstance(record.get(field), str):
            raise ValueError(
                f"{where}: field {field!r} must be a string; got {record.get(field)!r}"
            )
    op = record.get("op", "conv2d")
    if op != "conv2d":
        return dict(record)
    if record["best_impl"] not in _known_impls():
        raise ValueError(
            f"{where}: best_impl {record['best_impl']!r} is not one of {_known_impls()}"
        )
    signature = record.get("signature")
    if signature is None:
        try:
            signature = conv_signature(
                record["x_shape"], record["kernel_shape"], record.get("strides", (1, 1)),
                record.get("dilation", (1, 1)), record.get("groups", 1),
            )
        except KeyError as missing:
            raise ValueError(
                f"{where}: give 'signature' or 'x_shape' and 'kernel_shape' (missing {missing})"
            ) from None
    return {**record, "op": "conv2d", "signature": signature}


def write_auto_table(
    records: Iterable[Mapping[str, Any]], path: str | os.PathLike = AUTO_TABLE_PATH
) -> Path:
    """Validates ``records`` (format in the module docstring) and writes them as JSON."""
    canonical = []
    seen = set()
    for index, record in enumerate(records):
        record = _canonical_record(record, f"write_auto_table: record {index}")
        if record["op"] == "conv2d":
            key = (record["backend"], record["signature"])
            if key in seen:
                raise ValueError(
                    f"write_auto_table: record {index} repeats backend={key[0]!r} "
                    f"signature={key[1]!r}; keep only the best implementation per signature"
                )
            seen.add(key)
        canonical.append(record)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(canonical, indent=1) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a table
    _read_table.cache_clear()
    return path


@functools.lru_cache(maxsize=8)
def _read_table(path: str, mtime_ns: int) -> dict[tuple[str, str], str]:
    del mtime_ns  # part of the cache key only: a rewritten file is read again
    records = json.loads(Path(path).read_text())
    if not isinstance(records, list):
        raise ValueError(f"auto table {path}: expected a JSON list of records")
    table = {}
    for index, record in enumerate(records):
        if not isinstance(record, dict) or record.get("op", "conv2d") != "conv2d":
            continue
        record = _canonical_record(record, f"auto table {path}: record {index}")
        table[(record["backend"], record["signature"])] = record["best_impl"]
    return table


def load_auto_table(path: str | os.PathLike = AUTO_TABLE_PATH) -> dict[tuple[str, str], str]:
    """{(backend, signature): best_impl}; empty when the file does not exist."""
    path = Path(path)
    try:
        mtime_ns = path.stat().st_mtime_ns
    except FileNotFoundError:
        return {}
    return _read_table(str(path), mtime_ns)


def _cpu_default(
    kernel_shape: Sequence[int], strides: tuple[int, int], dilation: tuple[int, int], groups: int
) -> str:
    """Fastest general implementation measured on CPU (see the conv report / benchmarks)."""
    del kernel_shape, strides, dilation, groups
    return "im2col"


def choose_conv_impl(
    x_shape: Sequence[int],
    kernel_shape: Sequence[int],
    strides: int | Sequence[int] = (1, 1),
    dilation: int | Sequence[int] = (1, 1),
    groups: int = 1,
    backend: str | None = None,
    *,
    table_path: str | os.PathLike | None = None,
) -> str:
    """The implementation ``impl="auto"`` runs for these static shapes on ``backend``.

    ``backend`` defaults to ``jax.default_backend()``; ``table_path`` to ``AUTO_TABLE_PATH``.
    """
    if backend is None:
        backend = jax.default_backend()
    strides, dilation = _pair(strides), _pair(dilation)
    table = load_auto_table(AUTO_TABLE_PATH if table_path is None else table_path)
    signature = conv_signature(x_shape, kernel_shape, strides, dilation, groups)
    best = table.get((backend, signature))
    if best is not None and not unsupported_reason(best, kernel_shape, strides, dilation, groups):
        return best
    if backend == "cpu":
        return _cpu_default(kernel_shape, strides, dilation, groups)
    return "lax"
