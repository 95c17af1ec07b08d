"""Plots and image outputs: training curves, confusion matrices, segmentation overlays,
detections, filters and activations, class activation maps. Matplotlib renders with
Agg only; nothing needs a display."""

from vision_jax.viz.cam import class_activation_map, overlay_heatmap
from vision_jax.viz.confusion import plot_confusion_matrix
from vision_jax.viz.detection import draw_detections
from vision_jax.viz.filters import plot_activations, plot_conv_filters
from vision_jax.viz.images import class_palette, to_uint8_rgb
from vision_jax.viz.segmentation import overlay_mask, save_segmentation_grid
from vision_jax.viz.training_curves import plot_training_curves, read_curves

__all__ = [
    "class_activation_map",
    "class_palette",
    "draw_detections",
    "overlay_heatmap",
    "overlay_mask",
    "plot_activations",
    "plot_confusion_matrix",
    "plot_conv_filters",
    "plot_training_curves",
    "read_curves",
    "save_segmentation_grid",
    "to_uint8_rgb",
]
