"""Which convolution implementation ``conv2d(..., impl="auto")`` runs.

The choice is made in Python at trace time from static shapes, never inside the traced
computation: first a measured table, then a per-backend default.

Auto table
----------
``vision_jax/ops/auto_table.json``, shipped in the package (``auto_table``), is a JSON list
of records, one per (backend, op, signature); convolution records are::

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
- ``best_impl``: a ``conv2d`` implementation name (``kernels.implementations("conv2d")``);
  the writer should pick
  the fastest *forward+backward* time (training is what ``auto`` serves).
- Any other keys (timings, dtype, ...) are kept in the file and ignored here.

Write it with ``write_auto_table(records, path)``; a record may give ``signature`` or the
fields ``x_shape``, ``kernel_shape``, ``strides``, ``dilation``, ``groups`` from which it
is computed. A (backend, signature) may appear only once. A table entry whose
implementation cannot run the arguments (e.g. winograd for a 5x5 kernel), or does not run
on this backend, is ignored.

Defaults (no table entry)
-------------------------
On GPU and TPU: ``lax`` (XLA's convolution maps onto cuDNN / the MXU). On CPU: a rule
from measured forward+backward times, see ``cpu_default_impl``; it is tuned for training
(forward-only use, e.g. inference, may prefer another implementation; a table entry
overrides it).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax

from vision_jax.ops import auto_table, kernels


def _pair(value: int | Sequence[int]) -> tuple[int, int]:
    return tuple(int(v) for v in value) if isinstance(value, Sequence) else (int(value),) * 2


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
    check = kernels.TABLES["conv2d"].get(impl).unsupported
    if check is None:
        return None
    return check(tuple(kernel_shape[:2]), _pair(strides), _pair(dilation), groups)


def _canonical_record(record: Mapping[str, Any], where: str) -> dict[str, Any]:
    for field in ("backend", "best_impl"):
        if not isinstance(record.get(field), str):
            raise ValueError(
                f"{where}: field {field!r} must be a string; got {record.get(field)!r}"
            )
    op = record.get("op", "conv2d")
    if op != "conv2d":
        return dict(record)
    known = kernels.TABLES["conv2d"].names()
    if record["best_impl"] not in known:
        raise ValueError(f"{where}: best_impl {record['best_impl']!r} is not one of {known}")
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
    records: Iterable[Mapping[str, Any]], path: str | os.PathLike | None = None
) -> Path:
    """Validates ``records`` (format in the module docstring) and writes them as JSON to
    ``path`` (default: the shipped table of this checkout)."""
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
    path = auto_table.source_path() if path is None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(canonical, indent=1) + "\n")
    tmp.replace(path)  # atomic: a reader never sees half a table
    return path


def cpu_default_impl(
    x_shape: Sequence[int],
    kernel_shape: Sequence[int],
    strides: tuple[int, int],
    dilation: tuple[int, int],
    groups: int,
) -> str:
    """The CPU choice without a table entry: the fastest forward+backward measured on the
    shared 2-core AVX-512 dev box, float32 (CPU time of one pinned core, median of 9
    interleaved runs; wall time on a loaded shared box was too noisy to rank by).

    - grouped / depthwise: ``shifted_sum``: each tap is a fused multiply-add
      (MobileNet-style (2, 56, 56, 128) depthwise 3x3: 29 ms vs lax 73 ms; forward 1.1 vs 27).
    - 10x10 kernels and up, stride 1, dilation 1: ``fft`` (11x11 on (2, 64, 64, 16): 31 ms
      vs lax 77; a stride s would waste s^2 of the FFT's work).
    - other 5x5 kernels and up: ``lax`` (7x7 on (2, 56, 56, 32): lax 23 ms vs im2col 45,
      ResNet stem 47 vs 54; the patch tensor is kh*kw times the input; 5x5 extrapolated).
    - 3x3 stride 1 with C_in >= 16 and at least 2 * max(C_in, C_out) 2x2 output tiles:
      ``winograd`` (MNIST conv2: 33 ms vs lax 44; U-Net (2, 64, 64, 256->128): 169 vs 179).
      With fewer tiles the transforms dominate (VGG conv5, batch 1: 53 ms vs im2col 27).
    - everything else (1x1, strided, small batches of deep 3x3): ``im2col`` (ResNet-50
      1x1 stride-2 projection: 15 ms vs lax 42; VGG conv5, batch 1: 28 vs 42).

    Timed in a whole train step instead, narrow layers can rank otherwise: ``seed_cnn``'s
    conv2 and conv3 at batch 64 train 36 % faster with ``im2col`` than with this rule's
    ``winograd`` (``benchmarks.train_throughput``), so the shipped table lists those
    signatures; the rule is left as measured for the wide layers (ResNet-18's step is faster
    with it than with ``im2col`` everywhere).
    """
    kh, kw = kernel_shape[0], kernel_shape[1]
    c_in, c_out = x_shape[3], kernel_shape[3]
    if groups > 1:
        return "shifted_sum"
    if kh * kw >= 100 and strides == (1, 1) and dilation == (1, 1):
        return "fft"
    if kh * kw >= 25:
        return "lax"
    if (kh, kw) == (3, 3) and strides == (1, 1) and dilation == (1, 1) and c_in >= 16:
        tiles = x_shape[0] * -(-x_shape[1] // 2) * -(-x_shape[2] // 2)
        if tiles >= 2 * max(c_in, c_out):
            return "winograd"
    return "im2col"


def auto_conv_choice(
    x_shape: Sequence[int],
    kernel_shape: Sequence[int],
    strides: int | Sequence[int] = (1, 1),
    dilation: int | Sequence[int] = (1, 1),
    groups: int = 1,
    backend: str | None = None,
    *,
    table_path: str | os.PathLike | None = None,
) -> tuple[str, str]:
    """(implementation, where the choice came from: ``"table"`` or ``"default"``).

    ``backend`` defaults to ``jax.default_backend()``; ``table_path`` to the shipped table.
    """
    if backend is None:
        backend = jax.default_backend()
    strides, dilation = _pair(strides), _pair(dilation)
    signature = conv_signature(x_shape, kernel_shape, strides, dilation, groups)
    best = auto_table.choice(backend, "conv2d", signature, table_path)
    if (best in kernels.implementations("conv2d", backend)
            and not unsupported_reason(best, kernel_shape, strides, dilation, groups)):
        return best, "table"
    if backend == "cpu":
        return cpu_default_impl(x_shape, kernel_shape, strides, dilation, groups), "default"
    return "lax", "default"
