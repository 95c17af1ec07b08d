"""Timing utilities shared by the benchmark suites: compile-excluded median timing,
analytic FLOP counts, the machine's matmul peak and the device description.

Every suite times the same way: compile first (``jax.jit(...).lower(...).compile()``), run
warm-up calls that are not counted, then time each call to ``block_until_ready`` and report
the median, so one slow call (another process, a page fault) does not move the figure.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class Timing:
    """The median of the timed calls and every call's seconds."""

    median_s: float
    times_s: tuple[float, ...]


def compile_jitted(fn: Callable[..., Any], *args: Any) -> Callable[..., Any]:
    """``jax.jit(fn)`` compiled ahead of time for ``args``, so that timing excludes it."""
    return jax.jit(fn).lower(*args).compile()


def median_time(fn: Callable[..., Any], *args: Any, repeats: int = 10, min_repeats: int = 3,
                budget_s: float = 1.0, warmup: int = 1, cap_s: float = 10.0) -> Timing:
    """Median wall time of ``fn(*args)`` until ``block_until_ready``.

    Runs ``warmup`` uncounted calls, then times up to ``repeats`` calls, stopping early once
    at least ``min_repeats`` calls have used ``budget_s`` seconds (slow kernels get fewer
    repeats; fast ones the full count), or as soon as the timed calls have used ``cap_s``
    (a kernel that takes seconds per call is timed once or twice, not ``min_repeats`` times).
    """
    if min(repeats, min_repeats) < 1:
        raise ValueError(f"median_time: repeats ({repeats}) and min_repeats ({min_repeats}) "
                         "must be >= 1")
    for _ in range(warmup):
        jax.block_until_ready(fn(*args))
    times: list[float] = []
    while len(times) < repeats:
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
        spent = sum(times)
        if (len(times) >= min_repeats and spent >= budget_s) or spent >= cap_s:
            break
    return Timing(median_s=statistics.median(times), times_s=tuple(times))


def conv_flops(x_shape: Sequence[int], kernel_shape: Sequence[int],
               out_shape: Sequence[int]) -> int:
    """Forward FLOPs of an NHWC x HWIO convolution: 2 x MACs.

    Each output element is a dot product over kh * kw * (C_in / groups) inputs, and the
    HWIO kernel's third axis already is C_in / groups.
    """
    kernel_h, kernel_w, in_per_group, _ = kernel_shape
    return 2 * math.prod(out_shape) * kernel_h * kernel_w * in_per_group


def pool_window_ops(out_shape: Sequence[int], window: Sequence[int]) -> int:
    """Forward "FLOPs" of a pooling: one max/add per window element per output element."""
    return math.prod(out_shape) * math.prod(window)


def matmul_peak_gflops(size: int = 2048, dtype: Any = jnp.float32, repeats: int = 5) -> float:
    """The machine's matmul throughput: a (size x size) @ (size x size) dot, in GFLOP/s.

    The reference against which kernels report their fraction of peak.
    """
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (size, size), dtype)
    b = jax.random.normal(key_b, (size, size), dtype)
    dot = compile_jitted(jnp.dot, a, b)
    timing = median_time(dot, a, b, repeats=repeats, min_repeats=repeats, warmup=1)
    return 2 * size**3 / timing.median_s / 1e9


def device_info() -> dict[str, str]:
    """``backend``, ``device_kind`` and ``jax_version`` of the default device."""
    device = jax.devices()[0]
    return {"backend": jax.default_backend(), "device_kind": device.device_kind,
            "jax_version": jax.__version__}
