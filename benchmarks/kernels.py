"""Times every convolution and pooling implementation against ``lax`` on real layer shapes.

    python -m benchmarks.kernels [--quick] [--dtype f32,bf16] [--out benchmarks/results]
        [--table vision_jax/ops/auto_table.json]

For each layer of ``kernel_cases`` (MNIST convnet, VGG-16, ResNet-50, U-Net), each op
(``conv2d``; ``max_pool`` and ``avg_pool``), each dtype and each implementation in the op's
registry, it times the forward pass and the forward+backward pass (the gradient of
``sum(out * cotangent)`` w.r.t. every input: x, and the kernel for convolutions). Compile
and warm-up are excluded; the figure is the median of the repeats. Each forward output is
first checked against ``lax``'s; an implementation that rejects a shape (``ValueError``)
is listed as unsupported, one that errors or disagrees as failed, and neither is timed.

Writes ``<out>/kernels_<backend>.json`` (records in the DESIGN.md schema), ``.md`` (a table
with each kernel's fraction of the machine's f32 matmul peak), ``.png`` (speed-ups vs lax)
and merges the fastest forward+backward implementation per shape into the auto table that
ships in the package, ``vision_jax/ops/auto_table.json`` (``--table`` to write elsewhere;
format: ``vision_jax.ops.auto_table``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from benchmarks import kernel_report
from benchmarks.kernel_cases import FULL_CASES, QUICK_CASES, Case, ConvCase
from benchmarks.records import PASSES, make_record
from benchmarks.timing import compile_jitted, device_info, matmul_peak_gflops, median_time
from vision_jax.ops import auto_table

DTYPES = {"f32": jnp.float32, "float32": jnp.float32, "bf16": jnp.bfloat16,
          "bfloat16": jnp.bfloat16}
# Forward outputs must match lax's to this fraction of lax's largest magnitude.
TOLERANCE = {"float32": 1e-3, "bfloat16": 5e-2}
# Forward+backward does the forward work, then the backward: for a convolution the input and
# the kernel gradients each cost one forward's MACs; for pooling the backward visits every
# window element once, as the forward does.
FWD_BWD_FLOP_FACTOR = {"conv2d": 3, "max_pool": 2, "avg_pool": 2}


def implementations(op: str) -> dict[str, Callable[..., jax.Array]]:
    """The op's implementations on this backend (``lax`` first; Pallas where it compiles)."""
    from vision_jax.ops import kernels

    return kernels.implementations(op)


def _inputs(case: Case, dtype: Any) -> tuple[jax.Array, ...]:
    """x (and the kernel) and the cotangent; from NumPy, as jax.random compiles per shape."""
    rng = np.random.default_rng(0)

    def normal(shape):
        return jnp.asarray(rng.standard_normal(shape, dtype=np.float32), dtype)

    if isinstance(case, ConvCase):
        return normal(case.x_shape), normal(case.kernel_shape), normal(case.out_shape())
    return normal(case.x_shape), normal(case.out_shape())


def _forward(fn: Callable[..., jax.Array], case: Case) -> Callable[..., jax.Array]:
    if isinstance(case, ConvCase):
        return lambda x, kernel: fn(x, kernel, strides=case.strides, padding=case.padding,
                                    dilation=(1, 1), groups=1)
    return lambda x: fn(x, case.window, strides=case.strides, padding=case.padding)


def _pass_fn(forward: Callable[..., jax.Array], pass_name: str, n_inputs: int):
    if pass_name == "fwd":
        return forward

    def loss(*args):
        return jnp.sum(forward(*args[:n_inputs]) * args[n_inputs])

    return jax.grad(loss, argnums=tuple(range(n_inputs)))


def _max_relative_error(out: jax.Array, ref: jax.Array) -> float:
    out, ref = np.asarray(out, np.float32), np.asarray(ref, np.float32)
    if out.shape != ref.shape:
        return float("inf")
    return float(np.max(np.abs(out - ref)) / max(float(np.max(np.abs(ref))), 1e-30))


class Runner:
    """Measures (case, op, dtype) groups and collects records, unsupported and failed runs."""

    def __init__(self, quick: bool, info: dict[str, str], progress: tqdm):
        # warmup=0: the forward check's call after compiling already warmed each function.
        self.timing_args = (dict(repeats=3, min_repeats=3, budget_s=0.2, warmup=0, cap_s=1.0)
                            if quick else
                            dict(repeats=7, min_repeats=3, budget_s=0.5, warmup=0, cap_s=2.0))
        self.info = info
        self.progress = progress
        # A record plus its "layer" and auto-table "signature", for the reports.
        self.rows: list[dict[str, Any]] = []
        self.unsupported: list[dict[str, str]] = []
        self.failures: list[dict[str, str]] = []

    def measure_group(self, case: Case, op: str, dtype: Any) -> None:
        dtype_name = jnp.dtype(dtype).name
        args = _inputs(case, dtype)
        n_inputs = len(args) - 1
        where = {"layer": case.layer, "op": op, "shape": case.shape(), "dtype": dtype_name}
        medians: dict[tuple[str, str], float] = {}
        reference = None
        for impl, fn in implementations(op).items():
            self.progress.set_postfix_str(f"{case.layer} {op} {dtype_name} {impl}")
            forward = _forward(fn, case)
            for index, pass_name in enumerate(PASSES):
                try:
                    medians[(impl, pass_name)], output = self._time_pass(
                        forward, pass_name, args, n_inputs, reference, dtype_name)
                except NotTimed as problem:
                    if impl == "lax":
                        raise RuntimeError(f"lax reference failed on {where}: {problem}") from None
                    listing = self.unsupported if problem.unsupported else self.failures
                    listing.append({**where, "impl": impl, "pass": pass_name,
                                    "reason": str(problem)})
                    self.progress.update(len(PASSES) - index)
                    break
                if impl == "lax" and pass_name == "fwd":
                    reference = output
                self.progress.update(1)
        flops = case.flops(op)
        for (impl, pass_name), median_s in medians.items():
            pass_flops = flops * (1 if pass_name == "fwd" else FWD_BWD_FLOP_FACTOR[op])
            record = make_record(
                suite="kernels", op=op, impl=impl, shape=case.shape(), dtype=dtype_name,
                **{"pass": pass_name}, median_s=median_s, gflops=pass_flops / median_s / 1e9,
                ratio_vs_lax=medians[("lax", pass_name)] / median_s, **self.info)
            self.rows.append({**record, "layer": case.layer,
                              "signature": case.auto_signature(dtype)})

    def _time_pass(self, forward, pass_name, args, n_inputs, reference, dtype_name):
        """(median seconds, output) of one pass; ``NotTimed`` if it cannot or must not run."""
        fn = _pass_fn(forward, pass_name, n_inputs)
        call_args = args if pass_name == "fwd+bwd" else args[:n_inputs]
        try:
            compiled = compile_jitted(fn, *call_args)
            output = jax.block_until_ready(compiled(*call_args))
        except (ValueError, NotImplementedError) as error:
            raise NotTimed(_one_line(error), unsupported=True) from error
        except Exception as error:  # a broken implementation must not stop the suite
            raise NotTimed(f"{type(error).__name__}: {_one_line(error)}") from error
        if pass_name == "fwd" and reference is not None:
            error = _max_relative_error(output, reference)
            if not error <= TOLERANCE[dtype_name]:
                raise NotTimed(f"forward differs from lax: max relative error {error:.3g}")
        return median_time(compiled, *call_args, **self.timing_args).median_s, output


class NotTimed(Exception):
    """An implementation that was not timed: it rejects the shape (``unsupported``), fails,
    or disagrees with lax."""

    def __init__(self, reason: str, unsupported: bool = False):
        super().__init__(reason)
        self.unsupported = unsupported


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def run(cases: Sequence[Case], dtypes: Sequence[Any], quick: bool, out: Path,
        table: Path | None = None) -> dict[str, Any]:
    """Runs the suite and writes the reports; returns the JSON document it wrote."""
    start = time.perf_counter()
    info = device_info()
    peak = matmul_peak_gflops(size=1024 if quick else 2048, repeats=3 if quick else 5)
    groups = [(case, op, dtype) for case in cases for op in case.ops for dtype in dtypes]
    total = sum(len(implementations(op)) * len(PASSES) for _, op, _ in groups)
    with tqdm(total=total, desc="kernels", unit="run") as progress:
        runner = Runner(quick, info, progress)
        for case, op, dtype in groups:
            runner.measure_group(case, op, dtype)
    meta = {**info, "matmul_peak_gflops": peak, "quick": quick,
            "dtypes": [jnp.dtype(d).name for d in dtypes],
            "wall_s": time.perf_counter() - start}
    return kernel_report.write_all(out, meta, runner.rows, runner.unsupported, runner.failures,
                                   table or auto_table.source_path())


def parse_dtypes(text: str) -> list[Any]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in DTYPES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"--dtype: unknown {unknown or text!r}; use a comma list of {sorted(DTYPES)}")
    return [DTYPES[name] for name in names]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.kernels",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a few small shapes and 3 repeats: a CI smoke test (< 1 minute)")
    parser.add_argument("--dtype", type=parse_dtypes, default=None,
                        help="comma list of f32, bf16 (default: both; f32 with --quick)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"),
                        help="output folder (default: benchmarks/results)")
    parser.add_argument("--table", type=Path, default=None,
                        help="auto table to merge the winners into (default: the one shipped "
                             "in the package, vision_jax/ops/auto_table.json)")
    args = parser.parse_args(argv)
    dtypes = args.dtype or parse_dtypes("f32" if args.quick else "f32,bf16")
    document = run(QUICK_CASES if args.quick else FULL_CASES, dtypes, args.quick, args.out,
                   args.table)
    print(f"{len(document['records'])} records, {len(document['unsupported'])} unsupported, "
          f"{len(document['failures'])} failed in {document['meta']['wall_s']:.0f} s -> "
          f"{args.out}")


if __name__ == "__main__":
    main()
