"""The outputs of ``benchmarks.kernels``: JSON, a markdown table, a PNG chart, the auto table
(the one shipped in the package unless told another).

``rows`` are benchmark records (``records.RECORD_FIELDS``) plus the ``layer`` they were
measured on; the JSON keeps the records in the exact schema and maps each (op, shape) to its
layer separately.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.records import PASSES, RECORD_FIELDS, markdown_table
from vision_jax.ops import auto_table, conv_auto


def write_all(out: Path, meta: dict[str, Any], rows: Sequence[dict[str, Any]],
              unsupported: Sequence[dict[str, str]], failures: Sequence[dict[str, str]],
              table: Path) -> dict[str, Any]:
    """Writes ``kernels_<backend>.{json,md,png}`` under ``out`` and merges the winners into the
    auto table at ``table``; returns the JSON document."""
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"kernels_{meta['backend']}"
    document = {
        "suite": "kernels",
        "meta": meta,
        "records": [{f: row[f] for f in RECORD_FIELDS} for row in rows],
        "layers": {f"{row['op']} {row['shape']}": row["layer"] for row in rows},
        "unsupported": list(unsupported),
        "failures": list(failures),
    }
    stem.with_suffix(".json").write_text(json.dumps(document, indent=1) + "\n")
    stem.with_suffix(".md").write_text(markdown(meta, rows, unsupported, failures))
    write_chart(stem.with_suffix(".png"), meta, rows)
    merge_auto_table(table, auto_records(rows))
    return document


def auto_records(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One auto-table record per (backend, op, signature): the impl with the fastest
    forward+backward pass. Convolution signatures carry no dtype; where several dtypes share
    one, float32 decides."""
    best: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in rows:
        if row["pass"] != "fwd+bwd":
            continue
        key = (row["backend"], row["op"], row["signature"])
        held = best.get(key)
        if (held is None or (row["dtype"] == "float32") > (held["dtype"] == "float32")
                or (row["dtype"] == held["dtype"] and row["median_s"] < held["median_s"])):
            best[key] = row
    return [{"backend": row["backend"], "op": row["op"], "signature": row["signature"],
             "best_impl": row["impl"], "dtype": row["dtype"],
             "ratio_vs_lax": row["ratio_vs_lax"]} for row in best.values()]


def merge_auto_table(path: Path, records: Sequence[dict[str, Any]]) -> None:
    """Writes ``records`` into the table at ``path``, replacing records of the same
    (backend, op, signature) and keeping all others (other machines, other shapes)."""
    def key(record):
        return record.get("backend"), record.get("op", "conv2d"), record.get("signature")

    fresh = {key(r) for r in records}
    kept = [r for r in auto_table.read_records(path) if key(r) not in fresh]
    conv_auto.write_auto_table([*kept, *records], path)


def _display_rows(rows: Sequence[dict[str, Any]], peak: float) -> list[dict[str, Any]]:
    return [{**row, "median ms": row["median_s"] * 1e3, "GFLOP/s": row["gflops"],
             "% peak": 100 * row["gflops"] / peak, "vs lax": row["ratio_vs_lax"]}
            for row in rows]


def markdown(meta: dict[str, Any], rows: Sequence[dict[str, Any]],
             unsupported: Sequence[dict[str, str]], failures: Sequence[dict[str, str]]) -> str:
    """The human-readable report: summary of max-pool fwd+bwd, every record, what did not run."""
    today = datetime.date.today().isoformat()
    peak = meta["matmul_peak_gflops"]
    shown = _display_rows(rows, peak)
    parts = [
        f"# Kernel benchmark: {meta['backend']} ({meta['device_kind']}), jax {meta['jax_version']}"
        "\n",
        f"Measured {today} by `python -m benchmarks.kernels"
        f"{' --quick' if meta['quick'] else ''}` in {meta['wall_s']:.0f} s; dtypes "
        f"{', '.join(meta['dtypes'])}. f32 matmul peak of this machine: {peak:.1f} GFLOP/s.\n",
        "Median of repeats, compile and warm-up excluded. `GFLOP/s` counts FLOPs analytically "
        "(convolution: 2 x MACs, x3 for forward+backward; pooling: one op per window element, "
        "x2 for forward+backward). `% peak` = GFLOP/s / matmul peak. `vs lax` = lax median / "
        "this median (> 1 is faster).\n",
        "## Max-pool forward+backward vs `reduce_window`\n",
        markdown_table([r for r in shown if r["op"] == "max_pool" and r["pass"] == "fwd+bwd"],
                       ["layer", "shape", "dtype", "impl", "median ms", "vs lax"]),
        "## All records\n",
        markdown_table(shown, ["layer", "op", "shape", "dtype", "pass", "impl", "median ms",
                               "GFLOP/s", "% peak", "vs lax"]),
    ]
    for title, listing in (("Unsupported (the implementation rejects the shape)", unsupported),
                           ("Failed (error, or output differs from lax)", failures)):
        if listing:
            parts += [f"## {title}\n", markdown_table(
                listing, ["layer", "op", "shape", "dtype", "impl", "pass", "reason"])]
    return "\n".join(parts)


def write_chart(path: Path, meta: dict[str, Any], rows: Sequence[dict[str, Any]]) -> None:
    """Horizontal bars of each implementation's speed-up over lax, one panel per pass."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = list(dict.fromkeys((r["layer"], r["op"], r["dtype"]) for r in rows))
    impls = sorted({r["impl"] for r in rows if r["impl"] != "lax"})
    ratio = {(r["layer"], r["op"], r["dtype"], r["pass"], r["impl"]): r["ratio_vs_lax"]
             for r in rows}
    height = max(3.0, 0.3 * len(groups) + 1.5)
    fig, axes = plt.subplots(1, len(PASSES), figsize=(14, height), sharey=True,
                             squeeze=False)
    bar = 0.8 / max(1, len(impls))
    colors = plt.get_cmap("tab10")
    for ax, pass_name in zip(axes[0], PASSES, strict=True):
        for index, impl in enumerate(impls):
            ys, values = [], []
            for g, group in enumerate(groups):
                value = ratio.get((*group, pass_name, impl))
                if value is not None:
                    ys.append(g + index * bar - 0.4 + bar / 2)
                    values.append(value)
            # Bars grow from 1 (as fast as lax): right is faster, left is slower.
            ax.barh(ys, [v - 1.0 for v in values], left=1.0, height=bar,
                    color=colors(index % 10), label=impl)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_title(f"{pass_name}: speed-up over lax (> 1 is faster)")
        ax.grid(axis="x", which="both", alpha=0.3)
    axes[0][0].set_yticks(range(len(groups)))
    axes[0][0].set_yticklabels([f"{layer} {op} {dtype}" for layer, op, dtype in groups],
                               fontsize=7)
    axes[0][0].set_ylim(len(groups) - 0.5, -0.5)  # first group on top, no empty margin
    if impls:
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=len(impls), fontsize=8,
                   bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"vision_jax kernels on {meta['backend']} ({meta['device_kind']}), "
                 f"jax {meta['jax_version']}")
    fig.tight_layout(rect=(0, 0, 1, 0.98))
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
