"""Class activation maps (Zhou et al., 2016) for global-average-pool + dense classifiers."""

from __future__ import annotations

import matplotlib
import numpy as np
from PIL import Image

from vision_jax.viz.images import to_uint8_rgb


def class_activation_map(features, dense_kernel, class_index: int) -> np.ndarray:
    """Where the image supports ``class_index``: the last conv features weighted by that
    class's dense weights, ``sum_c features[h, w, c] * dense_kernel[c, class_index]``,
    min-max scaled to [0, 1] (all zeros if the map is constant).

    Args:
      features: (H, W, C) activations feeding the global average pool.
      dense_kernel: (C, num_classes) weights of the dense layer after the pool.
    """
    features = np.asarray(features, np.float64)
    dense_kernel = np.asarray(dense_kernel, np.float64)
    if features.ndim != 3:
        raise ValueError(f"features must be (H, W, C), got shape {features.shape}.")
    if dense_kernel.ndim != 2 or dense_kernel.shape[0] != features.shape[-1]:
        raise ValueError(
            f"dense_kernel must be (C={features.shape[-1]}, num_classes), got {dense_kernel.shape}."
        )
    if not 0 <= class_index < dense_kernel.shape[1]:
        raise ValueError(f"class_index={class_index} is not in [0, {dense_kernel.shape[1]}).")
    cam = features @ dense_kernel[:, class_index]
    span = cam.max() - cam.min()
    return (cam - cam.min()) / span if span > 0 else np.zeros_like(cam)


def overlay_heatmap(image, cam, alpha: float = 0.4, colormap: str = "jet") -> np.ndarray:
    """Blends ``cam`` (h, w) in [0, 1], resized bilinearly to the image, over ``image``.

    Returns (H, W, 3) uint8; ``alpha=0`` returns the image unchanged.
    """
    rgb = to_uint8_rgb(image)
    cam = np.asarray(cam, np.float32)
    if cam.ndim != 2:
        raise ValueError(f"cam must be (h, w), got shape {cam.shape}.")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
    height, width = rgb.shape[:2]
    if cam.shape != (height, width):
        cam = np.asarray(Image.fromarray(cam).resize((width, height), Image.Resampling.BILINEAR))
    colours = matplotlib.colormaps[colormap](np.clip(cam, 0, 1))[..., :3] * 255
    return np.round((1 - alpha) * rgb + alpha * colours).astype(np.uint8)
