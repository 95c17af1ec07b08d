"""The benchmark record schema (DESIGN.md), shared by every suite.

A record is one timed (op, impl, shape, dtype, pass):
``suite, op, impl, shape, dtype, pass, median_s, gflops, ratio_vs_lax, backend,
device_kind, jax_version``. ``gflops`` is the achieved throughput in GFLOP/s (analytic FLOPs
/ ``median_s``); ``ratio_vs_lax`` is the lax median divided by this median (> 1: faster).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

RECORD_FIELDS = ("suite", "op", "impl", "shape", "dtype", "pass", "median_s", "gflops",
                 "ratio_vs_lax", "backend", "device_kind", "jax_version")
NUMBER_FIELDS = ("median_s", "gflops", "ratio_vs_lax")
PASSES = ("fwd", "fwd+bwd")


def make_record(**fields: Any) -> dict[str, Any]:
    """A record with exactly the schema's fields; ``ValueError`` on a missing, extra or
    non-finite/non-positive field."""
    missing = [f for f in RECORD_FIELDS if f not in fields]
    extra = [f for f in fields if f not in RECORD_FIELDS]
    if missing or extra:
        raise ValueError(f"benchmark record: missing fields {missing}, unknown fields {extra}; "
                         f"a record has exactly {list(RECORD_FIELDS)}")
    if fields["pass"] not in PASSES:
        raise ValueError(f"benchmark record: pass must be one of {PASSES}; got {fields['pass']!r}")
    for name in NUMBER_FIELDS:
        value = fields[name]
        if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
            raise ValueError(f"benchmark record: {name} must be a positive finite number; "
                             f"got {value!r}")
    return {f: fields[f] for f in RECORD_FIELDS}


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub markdown table of ``rows`` (dicts) over ``columns``; floats to 4 significant
    digits."""
    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"
