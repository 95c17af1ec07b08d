"""Grad-CAM (Selvaraju et al., 2017) for any model at any spatial layer.

The class score's gradient with respect to the layer's output, averaged over positions,
weighs each channel; the weighted sum of the channels, through a ReLU, is where the image
supports the class. For a model ending in global average pooling and one dense layer, at the
last conv map this is the CAM of Zhou et al. (2016) divided by h*w (`viz.cam` computes CAM
from the weights; a test checks the two agree). Nothing here knows a model's name: the
gradient is taken through `layers.call_with_layer`.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vision_jax.explain import layers


def grad_cam_fn(model: nn.Module, layer: str, relu: bool = True) -> Callable:
    """A jitted ``(variables, images, classes) -> (cams (N, h, w), logits, classes)``.

    ``classes`` (N,) int32 picks each image's class; -1 means the predicted one (the
    returned ``classes`` are the ones explained). ``relu=False`` keeps the signed map.
    """

    def run(variables, images, classes):
        shape = jax.eval_shape(lambda x: layers.layer_output(model, variables, x, layer),
                               images).shape

        def score(delta):
            logits, activation = layers.call_with_layer(model, variables, images, layer, delta)
            chosen = jnp.where(classes >= 0, classes, jnp.argmax(logits, axis=-1))
            picked = jnp.take_along_axis(logits, chosen[:, None], axis=1)
            return jnp.sum(picked), (logits, activation, chosen)

        grads, (logits, activation, chosen) = jax.grad(score, has_aux=True)(
            jnp.zeros(shape, jnp.float32))
        weights = grads.mean(axis=(1, 2))  # (N, C): one weight per channel and image
        cams = jnp.einsum("nhwc,nc->nhw", activation.astype(jnp.float32), weights)
        return (jax.nn.relu(cams) if relu else cams), logits, chosen

    return jax.jit(run)


def upsample(cams: jax.Array, size: tuple[int, int],
             stride: tuple[float, float] | None = None,
             origin: tuple[float, float] | None = None) -> jax.Array:
    """(N, h, w) maps -> (N, H, W), bilinear, each map scaled to [0, 1] (0 where constant).

    ``stride`` (input pixels per cell, `layers.layer_stride`) and ``origin`` (the centre of
    cell (0, 0) in pixels, `layers.layer_origin`) place the cells where the layer sees them,
    the outermost cells' values held out to the border; without ``origin`` the grid is
    centred on the image. Without ``stride`` the cells are spread over the whole image
    (``H / h`` apart), which stretches a VALID-padded map (``seed_cnn``'s conv3 would put its
    corner cells 6 pixels too far out).
    """
    height, width = cams.shape[1:]
    if stride is None:
        stride = (size[0] / height, size[1] / width)
    origin = origin or layers.centred_origin((height, width), size, stride)
    rows = _interpolation_matrix(height, size[0], stride[0], origin[0])
    cols = _interpolation_matrix(width, size[1], stride[1], origin[1])
    resized = jnp.einsum("yh,nhw,xw->nyx", rows, cams.astype(jnp.float32), cols)
    low = resized.min(axis=(1, 2), keepdims=True)
    span = resized.max(axis=(1, 2), keepdims=True) - low
    return jnp.where(span > 0, (resized - low) / jnp.where(span > 0, span, 1.0), 0.0)


def _interpolation_matrix(cells: int, pixels: int, stride: float,
                          origin: float) -> np.ndarray:
    """(pixels, cells) linear-interpolation weights: cell k centred at ``origin + stride * k``,
    pixel p at ``p + 0.5``."""
    position = (np.arange(pixels) + 0.5 - origin) / stride
    position = np.clip(position, 0.0, cells - 1)
    low = np.minimum(np.floor(position).astype(int), max(cells - 2, 0))
    frac = position - low
    weights = np.zeros((pixels, cells), np.float32)
    weights[np.arange(pixels), low] = 1.0 - frac
    if cells > 1:
        weights[np.arange(pixels), low + 1] += frac
    return weights


def peak_points(cams: jax.Array, stride: tuple[float, float], size: tuple[int, int],
                origin: tuple[float, float] | None = None) -> jax.Array:
    """(N, 2) normalised [y, x] of each (h, w) map's argmax cell's centre on the (H, W) image.

    Cell (i, j) is centred at ``origin + stride * (i, j)`` pixels (`layers.layer_origin`;
    without ``origin``, a grid centred on the image). This is the argmax of the map
    upsampled bilinearly as in Grad-CAM's paper (a piecewise-linear surface peaks on a
    node), without the border: upsampling holds the outer cells' values out to the edges,
    so an outer cell's peak would otherwise be a plateau whose first pixel is on the edge.
    """
    count, height, width = cams.shape
    origin = origin or layers.centred_origin((height, width), size, stride)
    flat = jnp.argmax(cams.reshape(count, -1), axis=1)
    row, col = flat // width, flat % width
    y = origin[0] + stride[0] * row
    x = origin[1] + stride[1] * col
    return jnp.stack([y / size[0], x / size[1]], axis=1)


def point_in_box(points, boxes_yxyx) -> jax.Array:
    """(N,) bool: whether each normalised [y, x] point lies in its [ymin, xmin, ymax, xmax]."""
    points, boxes = jnp.asarray(points), jnp.asarray(boxes_yxyx)
    y, x = points[:, 0], points[:, 1]
    return (y >= boxes[:, 0]) & (y <= boxes[:, 2]) & (x >= boxes[:, 1]) & (x <= boxes[:, 3])


def peak_in_box(heatmaps, boxes_yxyx) -> jax.Array:
    """(N,) bool: whether each (H, W) heatmap's argmax pixel lies inside its normalised
    [ymin, xmin, ymax, xmax] box (the pixel's centre is tested)."""
    heatmaps = jnp.asarray(heatmaps)
    height, width = heatmaps.shape[1:]
    flat = jnp.argmax(heatmaps.reshape(heatmaps.shape[0], -1), axis=1)
    row, col = flat // width, flat % width
    return point_in_box(jnp.stack([(row + 0.5) / height, (col + 0.5) / width], axis=1),
                        boxes_yxyx)


def explain_gradcam(model: nn.Module, variables, images, layer: str | None = None,
                    classes=None) -> dict:
    """Grad-CAM heatmaps at the input size, for callers such as ``predict --explain``.

    ``images`` are model inputs (N, H, W, C), preprocessed; ``layer`` defaults to the last
    spatial layer; ``classes`` (N,) defaults to the predicted ones. Returns ``heatmaps``
    (N, H, W) in [0, 1], ``peaks`` (N, 2: the map's argmax cell's centre, normalised
    [y, x], `peak_points`), ``classes``, ``logits`` and the ``layer`` used.
    """
    images = jnp.asarray(images, jnp.float32)
    layer = layer or layers.last_spatial_layer(model, variables, images.shape)
    wanted = jnp.full((images.shape[0],), -1, jnp.int32) if classes is None else \
        jnp.asarray(classes, jnp.int32)
    cams, logits, chosen = grad_cam_fn(model, layer)(variables, images, wanted)
    stride = layers.layer_stride(model, variables, layer, images.shape)
    origin = layers.layer_origin(model, variables, layer, images.shape, stride)
    return {"heatmaps": upsample(cams, images.shape[1:3], stride, origin),
            "peaks": peak_points(cams, stride, images.shape[1:3], origin), "classes": chosen,
            "logits": logits, "layer": layer}
