"""Segmentation masks drawn over images."""

from __future__ import annotations

import os

import numpy as np
from etils.epath import Path

from vision_jax.viz.figures import new_figure, save_figure
from vision_jax.viz.images import class_palette, to_uint8_rgb


def overlay_mask(image, mask, num_classes: int, alpha: float = 0.5) -> np.ndarray:
    """Blends a class colour into every pixel of ``image`` whose label is a class.

    Args:
      image: (H, W[, C]) float in [0, 1] or uint8.
      mask: (H, W) integer labels; pixels outside ``[0, num_classes)`` (an ignore label
        such as 255, or -1) are left exactly as they are.
      num_classes: number of classes (fixes the colours, so they match across images).
      alpha: weight of the class colour; 0 returns the image unchanged.

    Returns: (H, W, 3) uint8.
    """
    rgb = to_uint8_rgb(image)
    mask = np.asarray(mask)
    if mask.shape != rgb.shape[:2]:
        raise ValueError(
            f"mask {mask.shape} must have the image's height and width {rgb.shape[:2]}."
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    labelled = (mask >= 0) & (mask < num_classes)
    colours = class_palette(num_classes)[np.where(labelled, mask, 0)]
    blended = np.round((1 - alpha) * rgb + alpha * colours).astype(np.uint8)
    return np.where(labelled[..., None], blended, rgb)


def save_segmentation_grid(
    images,
    true_masks,
    pred_masks,
    out_png: str | os.PathLike,
    num_classes: int | None = None,
    alpha: float = 0.5,
) -> Path:
    """One row per example: the image, the ground truth overlaid, the prediction overlaid.

    ``images`` (N, H, W[, C]), ``true_masks`` and ``pred_masks`` (N, H, W). Without
    ``num_classes`` it is inferred from the largest label below 255 in either mask.
    """
    images, true_masks, pred_masks = (np.asarray(a) for a in (images, true_masks, pred_masks))
    if not (true_masks.shape == pred_masks.shape == images.shape[: true_masks.ndim]):
        raise ValueError(
            f"images {images.shape}, true_masks {true_masks.shape} and pred_masks "
            f"{pred_masks.shape} must share (N, H, W)."
        )
    if num_classes is None:
        labels = np.concatenate([true_masks.ravel(), pred_masks.ravel()])
        num_classes = int(labels[labels < 255].max(initial=0)) + 1
    rows = images.shape[0]
    figure = new_figure(9.0, 3.0 * rows)
    axes = figure.subplots(rows, 3, squeeze=False)
    for row in range(rows):
        panels = (
            ("image", to_uint8_rgb(images[row])),
            ("ground truth", overlay_mask(images[row], true_masks[row], num_classes, alpha)),
            ("prediction", overlay_mask(images[row], pred_masks[row], num_classes, alpha)),
        )
        for ax, (title, panel) in zip(axes[row], panels, strict=True):
            ax.imshow(panel, interpolation="nearest")
            ax.set_axis_off()
            if row == 0:
                ax.set_title(title)
    return save_figure(figure, out_png)
