"""Training curves from a run's ``metrics.jsonl``: one panel per metric, splits overlaid."""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict

from etils import epath

from vision_jax import paths
from vision_jax.viz.figures import new_figure, save_figure

# metric name -> split -> list of (step, value)
Curves = dict[str, dict[str, list[tuple[int, float]]]]


def read_curves(metrics_jsonl_path: str | os.PathLike) -> Curves:
    """Parses ``{"step": 1200, "train/loss": 0.05, "eval/accuracy": 0.98, ...}`` lines.

    Keys are ``<split>/<metric>``; a key without a split counts as split ``""``.
    Non-numeric values are skipped. A truncated *last* line (a run still writing) is
    skipped too; a broken line anywhere else is an error.
    """
    path = paths.as_path(metrics_jsonl_path)
    if not path.is_file():
        raise FileNotFoundError(f"metrics_jsonl_path={str(path)!r} does not exist.")
    lines = path.read_text().splitlines()
    curves: Curves = defaultdict(lambda: defaultdict(list))
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            if number == len(lines):
                break
            raise ValueError(f"{path}:{number} is not valid JSON ({error.msg}).") from None
        if "step" not in record:
            raise ValueError(f"{path}:{number} has no 'step' field; each line needs one.")
        step = int(record["step"])
        for key, value in record.items():
            if key == "step" or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            split, _, metric = key.rpartition("/")
            curves[metric][split].append((step, float(value)))
    return {metric: dict(splits) for metric, splits in curves.items()}


def plot_training_curves(metrics_jsonl_path: str | os.PathLike,
                         out_png: str | os.PathLike) -> epath.Path:
    """Plots every metric in ``metrics_jsonl_path`` (train and eval together) to a PNG."""
    curves = read_curves(metrics_jsonl_path)
    if not curves:
        raise ValueError(f"{metrics_jsonl_path} holds no numeric metrics to plot.")
    columns = min(3, len(curves))
    rows = math.ceil(len(curves) / columns)
    figure = new_figure(5.0 * columns, 3.5 * rows)
    axes = figure.subplots(rows, columns, squeeze=False).reshape(-1)
    for ax, (metric, splits) in zip(axes, curves.items(), strict=False):
        all_values = []
        for split, points in sorted(splits.items()):
            points.sort()
            steps, values = zip(*points, strict=True)
            all_values += values
            # Sparse curves (typically eval) get markers so single points stay visible.
            ax.plot(
                steps,
                values,
                label=split or metric,
                marker="o" if len(points) < 50 else None,
                markersize=3,
            )
        positive = all(v > 0 for v in all_values if math.isfinite(v))
        finite = [v for v in all_values if math.isfinite(v)]
        # Losses spanning decades read better on a log axis.
        if "loss" in metric and positive and finite and max(finite) > 20 * min(finite):
            ax.set_yscale("log")
        ax.set_title(metric)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend()
    for ax in axes[len(curves) :]:
        ax.set_visible(False)
    return save_figure(figure, out_png)
