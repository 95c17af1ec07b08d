"""Image helpers shared by the visualisations: uint8 RGB conversion and class colours."""

from __future__ import annotations

import colorsys

import numpy as np


def to_uint8_rgb(image) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) image -> (H, W, 3) uint8.

    Float images are taken to be in [0, 1] (values outside are clipped); integer images
    in [0, 255].
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"image must be (H, W), (H, W, 1) or (H, W, 3), got {image.shape}.")
    if np.issubdtype(image.dtype, np.floating):
        return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return np.clip(image, 0, 255).astype(np.uint8)


def class_palette(num_classes: int) -> np.ndarray:
    """(num_classes, 3) uint8 colours, bright and far apart for neighbouring class ids.

    Hues step by the golden ratio, so any number of classes gets distinct colours and
    the first few are already well separated.
    """
    golden = (5**0.5 - 1) / 2
    colours = [
        colorsys.hsv_to_rgb((k * golden) % 1.0, 0.75 + 0.25 * (k % 2), 0.95 - 0.2 * (k % 3 == 2))
        for k in range(num_classes)
    ]
    return np.round(np.array(colours).reshape(-1, 3) * 255).astype(np.uint8)
