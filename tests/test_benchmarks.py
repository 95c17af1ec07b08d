"""The kernel benchmark suite: its timing helpers, its record schema, and a --quick run."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import records, timing
from vision_jax.ops import auto_table

ROOT = Path(__file__).resolve().parents[1]


def test_conv_flops_is_two_macs_per_output_element_and_tap():
    # 28x28x1 -> 26x26x32 with a 3x3 kernel: 26*26*32 outputs, 9 MACs each, x batch 2.
    flops = timing.conv_flops((2, 28, 28, 1), (3, 3, 1, 32), (2, 26, 26, 32))
    assert flops == 2 * 2 * 26 * 26 * 32 * 9
    # Grouped: the HWIO kernel's input axis holds C_in / groups (here 64 / 4 = 16).
    assert timing.conv_flops((1, 8, 8, 64), (3, 3, 16, 32), (1, 8, 8, 32)) == 2 * 64 * 32 * 9 * 16


def test_pool_window_ops_counts_every_window_element():
    assert timing.pool_window_ops((128, 13, 13, 32), (2, 2)) == 128 * 13 * 13 * 32 * 4


def test_median_time_counts_repeats_after_warmup():
    calls = []
    result = timing.median_time(lambda: calls.append(1), repeats=5, min_repeats=5, warmup=2)
    assert len(calls) == 7 and len(result.times_s) == 5
    assert result.median_s == sorted(result.times_s)[2]


def test_make_record_enforces_the_schema():
    fields = dict(suite="kernels", op="max_pool", impl="reshape", shape="x", dtype="float32",
                  median_s=1e-3, gflops=2.0, ratio_vs_lax=3.0, backend="cpu",
                  device_kind="cpu", jax_version="0")
    fields["pass"] = "fwd"
    assert list(records.make_record(**fields)) == list(records.RECORD_FIELDS)
    with pytest.raises(ValueError, match="unknown fields"):
        records.make_record(**fields, layer="mnist.pool1")
    with pytest.raises(ValueError, match="median_s must be a positive finite number"):
        records.make_record(**{**fields, "median_s": float("nan")})


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("kernels")
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks.kernels", "--quick", "--dtype", "f32", "--out",
         str(out), "--table", str(out / "auto_table.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_quick_run_writes_schema_records_with_valid_numbers(quick_run):
    out, _ = quick_run
    document = json.loads((out / "kernels_cpu.json").read_text())
    assert document["meta"]["matmul_peak_gflops"] > 0
    rows = document["records"]
    assert rows
    for row in rows:
        assert list(row) == list(records.RECORD_FIELDS)
        assert row["suite"] == "kernels" and row["backend"] == "cpu"
        assert row["pass"] in ("fwd", "fwd+bwd") and row["dtype"] == "float32"
        for name in ("median_s", "gflops", "ratio_vs_lax"):
            assert isinstance(row[name], float) and math.isfinite(row[name]) and row[name] > 0
    by_key = {(r["op"], r["impl"], r["shape"], r["pass"]): r for r in rows}
    for (op, _, shape, pass_name), row in by_key.items():
        lax_row = by_key[(op, "lax", shape, pass_name)]
        assert row["ratio_vs_lax"] == pytest.approx(lax_row["median_s"] / row["median_s"])
    ops_timed = {(r["op"], r["impl"]) for r in rows}
    assert {("conv2d", "lax"), ("max_pool", "lax"), ("max_pool", "reshape"),
            ("max_pool", "strided"), ("avg_pool", "reshape")} <= ops_timed
    # The quick set's 3x3 stride-2 pool overlaps: reshape must be listed as unsupported.
    assert any(u["impl"] == "reshape" and "window=3x3" in u["shape"]
               for u in document["unsupported"])
    assert not document["failures"], document["failures"]


def test_quick_run_writes_markdown_png_and_auto_table(quick_run):
    out, _ = quick_run
    markdown = (out / "kernels_cpu.md").read_text()
    assert "| layer | op | shape | dtype | pass | impl |" in markdown
    assert "mnist.pool1" in markdown and "matmul peak" in markdown
    assert (out / "kernels_cpu.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = auto_table.read_records(out / "auto_table.json")
    assert {"conv2d", "max_pool", "avg_pool"} <= {r["op"] for r in table}
    assert all(r["backend"] == "cpu" for r in table)
    pool_records = [r for r in table if r["op"] != "conv2d"]
    assert all(r["signature"].endswith("dtype=float32") for r in pool_records)
    # The tiled 2x2 pool's winner avoids reduce_window's select_and_scatter gradient.
    winners = {r["best_impl"] for r in pool_records
               if r["op"] == "max_pool" and "window=2x2" in r["signature"]}
    assert winners and winners <= {"reshape", "strided"}
    # The readers auto uses accept the file.
    conv = next(r for r in table if r["op"] == "conv2d")
    assert auto_table.choice("cpu", "conv2d", conv["signature"], out / "auto_table.json") == (
        conv["best_impl"])
