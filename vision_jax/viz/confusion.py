"""Confusion-matrix heat map, readable from 2 to ~100 classes."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from etils.epath import Path

from vision_jax.viz.figures import new_figure, save_figure

ANNOTATE_UP_TO = 20  # beyond this, numbers in cells are too small to read


def plot_confusion_matrix(
    conf,
    class_names: Sequence[str],
    out_png: str | os.PathLike,
    normalize: bool = True,
    title: str | None = None,
) -> Path:
    """Heat map of ``conf[true, predicted]``; with ``normalize`` each row sums to 1 (recall).

    Cells carry their values when there are at most 20 classes. The figure grows with
    the number of classes so labels stay legible.
    """
    conf = np.asarray(conf, np.float64)
    num_classes = conf.shape[0]
    if conf.shape != (num_classes, num_classes) or num_classes == 0:
        raise ValueError(f"conf must be a square (K, K) matrix, got {conf.shape}.")
    if len(class_names) != num_classes:
        raise ValueError(
            f"class_names has {len(class_names)} names for a {num_classes}-class matrix."
        )
    if normalize:
        support = conf.sum(axis=1, keepdims=True)
        conf = np.divide(conf, support, out=np.zeros_like(conf), where=support > 0)

    side = float(np.clip(0.2 * num_classes + 3.0, 5.0, 24.0))
    font = float(np.clip(220 / num_classes, 5, 10))
    figure = new_figure(side + 1.0, side)
    ax = figure.add_subplot()
    image = ax.imshow(conf, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    figure.colorbar(image, ax=ax, shrink=0.8)
    ticks = np.arange(num_classes)
    ax.set_xticks(ticks, [str(n) for n in class_names], rotation=90, fontsize=font)
    ax.set_yticks(ticks, [str(n) for n in class_names], fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(
        title or ("confusion matrix (row-normalised)" if normalize else "confusion matrix")
    )
    if num_classes <= ANNOTATE_UP_TO:
        threshold = conf.max() / 2 if conf.max() > 0 else 1.0
        for (row, col), value in np.ndenumerate(conf):
            text = f"{value:.2f}" if normalize else f"{int(value)}"
            ax.text(
                col,
                row,
                text,
                ha="center",
                va="center",
                fontsize=font - 1,
                color="white" if value > threshold else "black",
            )
    return save_figure(figure, out_png)
