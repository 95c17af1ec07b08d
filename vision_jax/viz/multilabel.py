"""Per-label bar chart of a multi-label report: average precision, F1 at the label's
threshold, precision and recall side by side, so a weak label stands out at a glance."""

from __future__ import annotations

import os

import numpy as np
from etils.epath import Path

from vision_jax.viz.figures import new_figure, save_figure

BARS = (("average_precision", "AP"), ("f1-score", "F1"), ("precision", "precision"),
        ("recall", "recall"))


def plot_label_metrics(report: dict, out_png: str | os.PathLike,
                       title: str | None = None) -> Path:
    """Grouped bars per label from `multilabel_report` output (labels are its entries that
    carry an "average_precision"); the title carries mAP and the subset accuracy."""
    names = [k for k, v in report.items() if isinstance(v, dict) and "average_precision" in v]
    if not names:
        raise ValueError("report has no per-label entries; pass multilabel_report(...) output")
    width = float(np.clip(0.6 * len(names) + 3.0, 5.0, 30.0))
    figure = new_figure(width, 4.0)
    axes = figure.add_subplot()
    positions = np.arange(len(names))
    bar = 0.8 / len(BARS)
    for k, (key, label) in enumerate(BARS):
        axes.bar(positions + (k - (len(BARS) - 1) / 2) * bar,
                 [report[n][key] for n in names], bar, label=label)
    axes.set_xticks(positions, names, rotation=45 if len(names) > 8 else 0, ha="right"
                    if len(names) > 8 else "center")
    axes.set_ylim(0, 1.05)
    axes.set_ylabel("score")
    axes.legend(loc="lower right", fontsize="small")
    axes.set_title(title or f"mAP {report.get('mAP', float('nan')):.3f}, subset accuracy "
                            f"{report.get('subset_accuracy', float('nan')):.3f}")
    return save_figure(figure, out_png)
