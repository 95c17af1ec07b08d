"""The kernel tables: one `Registry` per op (conv2d, max_pool, avg_pool), filled by the modules
that define the implementations.

An implementation registers itself where it is written, for the backends it compiles on
(``backends=None``: every backend; the Pallas kernels say ``("gpu",)``), so no module patches
another's table and nothing asks for the backend at import time: the filter runs at lookup,
i.e. at trace time. ``implementations(op)`` is what a dispatcher, a test or a benchmark
iterates; ``lookup(op, name)`` fails with a one-line error listing what this backend runs.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable

import jax

from vision_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class Kernel:
    """One implementation of an op, called with the op's public arguments.

    ``backends``: where it compiles (None: everywhere). ``unsupported(kernel_size, strides,
    dilation, groups)`` (convolutions only): why it cannot run those arguments, or None.
    """

    name: str
    run: Callable[..., jax.Array]
    backends: tuple[str, ...] | None = None
    unsupported: Callable[..., str | None] | None = None

    def __call__(self, *args, **kwargs) -> jax.Array:
        return self.run(*args, **kwargs)

    def runs_on(self, backend: str) -> bool:
        return self.backends is None or backend in self.backends


_CONV_MODULES = ["conv", "conv_im2col", "conv_shifted_sum", "conv_winograd", "conv_fft"]
_POOL_MODULES = ["pool", "pool_reshape", "pool_strided"]
TABLES: dict[str, Registry[Kernel]] = {
    "conv2d": Registry("conv2d impl", modules=[
        *(f"vision_jax.ops.{m}" for m in _CONV_MODULES), "vision_jax.ops.pallas"]),
    "max_pool": Registry("max_pool impl", modules=[
        *(f"vision_jax.ops.{m}" for m in _POOL_MODULES), "vision_jax.ops.pallas"]),
    "avg_pool": Registry("avg_pool impl", modules=[
        f"vision_jax.ops.{m}" for m in _POOL_MODULES]),
}


def register(op: str, name: str, run: Callable[..., jax.Array], *,
             backends: tuple[str, ...] | None = None,
             unsupported: Callable[..., str | None] | None = None) -> Kernel:
    """Adds ``run`` as implementation ``name`` of ``op``; returns the `Kernel` (callable)."""
    kernel = Kernel(name, run, backends, unsupported)
    return TABLES[op].register(name, kernel)


def implementations(op: str, backend: str | None = None) -> dict[str, Kernel]:
    """{name: Kernel} of ``op`` that run on ``backend`` (default: JAX's), ``lax`` first."""
    backend = backend or jax.default_backend()
    names = sorted(TABLES[op].names(), key=lambda name: (name != "lax", name))
    return {name: TABLES[op].get(name) for name in names if TABLES[op].get(name).runs_on(backend)}


def lookup(op: str, name: str, backend: str | None = None) -> Kernel:
    """The implementation ``name`` of ``op`` on ``backend``; a one-line ``ValueError`` naming
    the choices (and the closest one) when this backend has none by that name."""
    available = implementations(op, backend)
    if name in available:
        return available[name]
    close = difflib.get_close_matches(str(name), available, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    elsewhere = name in TABLES[op] and " on this backend" or ""
    raise ValueError(f"{op}: unknown impl {name!r}{elsewhere}{hint}; choose one of "
                     f"{sorted(available)} or 'auto'")
