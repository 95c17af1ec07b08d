"""Convolution filters and feature maps as image mosaics."""

from __future__ import annotations

import math
import os

import matplotlib
import numpy as np
from etils.epath import Path

from vision_jax.viz.figures import new_figure, save_figure


def _normalise_each(tiles: np.ndarray) -> np.ndarray:
    """Min-max scales every tile (first axis) to [0, 1]; a constant tile becomes 0.5."""
    axes = tuple(range(1, tiles.ndim))
    low = tiles.min(axis=axes, keepdims=True)
    span = tiles.max(axis=axes, keepdims=True) - low
    return np.where(span > 0, (tiles - low) / np.where(span > 0, span, 1), 0.5)


def tile_mosaic(tiles: np.ndarray, gap: int = 1) -> np.ndarray:
    """(N, h, w[, 3]) tiles -> one near-square mosaic; gaps and empty slots are NaN."""
    count, height, width = tiles.shape[:3]
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    mosaic = np.full(
        (rows * (height + gap) - gap, columns * (width + gap) - gap) + tiles.shape[3:], np.nan
    )
    for i, tile in enumerate(tiles):
        top, left = (i // columns) * (height + gap), (i % columns) * (width + gap)
        mosaic[top : top + height, left : left + width] = tile
    return mosaic


def _save_mosaic(mosaic: np.ndarray, title: str, out_png: str | os.PathLike) -> Path:
    scale = 8.0 / max(mosaic.shape[:2])
    figure = new_figure(max(3.0, mosaic.shape[1] * scale), max(3.0, mosaic.shape[0] * scale) + 0.4)
    ax = figure.add_subplot()
    if mosaic.ndim == 3:  # RGB: NaN gaps become white
        ax.imshow(np.nan_to_num(mosaic, nan=1.0), interpolation="nearest")
    else:  # one channel: NaN gaps are masked and drawn white
        cmap = matplotlib.colormaps["viridis"].with_extremes(bad="white")
        ax.imshow(mosaic, cmap=cmap, interpolation="nearest", vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_axis_off()
    return save_figure(figure, out_png)


def plot_conv_filters(kernel, out_png: str | os.PathLike, max_filters: int = 64) -> Path:
    """Draws the first ``max_filters`` output filters of an HWIO kernel.

    A kernel over 3 input channels (a first layer on RGB) is shown in colour; otherwise
    each filter is the mean over its input channels, which shows its spatial pattern.
    Each filter is min-max scaled on its own.
    """
    kernel = np.asarray(kernel, np.float64)
    if kernel.ndim != 4:
        raise ValueError(f"kernel must be HWIO (4-D), got shape {kernel.shape}.")
    filters = np.moveaxis(kernel, -1, 0)[:max_filters]  # (O, H, W, I)
    tiles = filters if filters.shape[-1] == 3 else filters.mean(axis=-1)
    height, width, in_ch, out_ch = kernel.shape
    title = f"{min(out_ch, max_filters)} of {out_ch} filters, {height}x{width}x{in_ch}"
    return _save_mosaic(tile_mosaic(_normalise_each(tiles)), title, out_png)


def plot_activations(feature_map, out_png: str | os.PathLike, max_channels: int = 64) -> Path:
    """Draws the first ``max_channels`` channels of an (H, W, C) feature map, each scaled
    to its own range."""
    feature_map = np.asarray(feature_map, np.float64)
    if feature_map.ndim != 3:
        raise ValueError(
            f"feature_map must be (H, W, C), got shape {feature_map.shape}; "
            "take one example of a batch."
        )
    tiles = np.moveaxis(feature_map, -1, 0)[:max_channels]
    height, width, channels = feature_map.shape
    title = f"{tiles.shape[0]} of {channels} channels, {height}x{width}"
    return _save_mosaic(tile_mosaic(_normalise_each(tiles)), title, out_png)
