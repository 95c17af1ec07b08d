"""Geometric transforms as affine maps, and the one resample that applies their composition
to an image (bilinear), a class mask (nearest) and boxes (by their corners).

Coordinates are ``(y, x)`` of pixel centres: pixel ``(i, j)`` sits at ``(i, j)`` and covers
``[i - 0.5, i + 0.5]``. Boxes are ``xyxy`` in pixel-edge units (a box around pixel ``(i, j)``
alone is ``(j, i, j + 1, i + 1)``), as the detection data gives them. Each transform is a
3x3 matrix from *output* coordinates to *input* ones, so a chain ``op1, op2, ...`` is the
product ``M1 @ M2 @ ...`` and the image is sampled once, whatever the chain's length.
Samples from outside the image are 0 in the image (black) and `fill` in the mask.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from vision_jax.augment.registry import AUGMENTATIONS, Op

# -- matrices (output centre -> input centre) -------------------------------------------------


def translation(dy, dx) -> jax.Array:
    """The content moves down by `dy` and right by `dx` pixels."""
    return jnp.array([[1.0, 0.0, -dy], [0.0, 1.0, -dx], [0.0, 0.0, 1.0]], jnp.float32)


def flip_matrix(flip, size: int, axis: int) -> jax.Array:
    """Mirror along `axis` (0 = top-bottom, 1 = left-right) where `flip` is true."""
    sign = jnp.where(flip, -1.0, 1.0)
    shift = jnp.where(flip, size - 1.0, 0.0)
    m = jnp.eye(3, dtype=jnp.float32)
    return m.at[axis, axis].set(sign).at[axis, 2].set(shift)


def zoom(scale_y, scale_x, offset_y, offset_x) -> jax.Array:
    """The image magnified by `scale` with its top-left corner (pixel edge) placed at
    `offset`: input edge coordinate = (output edge coordinate - offset) / scale."""
    return jnp.array([[1 / scale_y, 0.0, (0.5 - offset_y) / scale_y - 0.5],
                      [0.0, 1 / scale_x, (0.5 - offset_x) / scale_x - 0.5],
                      [0.0, 0.0, 1.0]], jnp.float32)


def crop_resize(top, left, crop_height, crop_width, height: int, width: int) -> jax.Array:
    """The window (top, left, crop_height, crop_width) of the input stretched to height x width."""
    return zoom(height / crop_height, width / crop_width, -top * height / crop_height,
                -left * width / crop_width)


def rotation(degrees, height: int, width: int) -> jax.Array:
    """Counter-clockwise as displayed (y points down), about the image centre."""
    theta = jnp.deg2rad(degrees)
    cos, sin = jnp.cos(theta), jnp.sin(theta)
    cy, cx = (height - 1) / 2, (width - 1) / 2
    return jnp.array([[cos, sin, cy - cos * cy - sin * cx],
                      [-sin, cos, cx + sin * cy - cos * cx],
                      [0.0, 0.0, 1.0]], jnp.float32)


# -- samplers (one per config field) -----------------------------------------------------------


def _uniform(key, low, high):
    return jax.random.uniform(key, (), jnp.float32, low, high)


def random_resized_crop(key, section, height: int, width: int) -> jax.Array:
    """Inception crop: area fraction ~ U(area), log aspect ratio ~ U(log ratio), a uniform
    position; a window larger than the image on one axis is clipped to it."""
    k_area, k_ratio, k_y, k_x = jax.random.split(key, 4)
    area = _uniform(k_area, *section.random_resized_crop)
    low, high = section.crop_ratio
    ratio = jnp.exp(_uniform(k_ratio, math.log(low), math.log(high)))
    crop_w = jnp.minimum(width * jnp.sqrt(area * ratio), width)
    crop_h = jnp.minimum(height * jnp.sqrt(area / ratio), height)
    top = _uniform(k_y, 0.0, 1.0) * (height - crop_h)
    left = _uniform(k_x, 0.0, 1.0) * (width - crop_w)
    return crop_resize(top, left, crop_h, crop_w, height, width)


def random_scale(key, section, height: int, width: int) -> jax.Array:
    """Zoom by s ~ U(scale) at a uniform offset over the valid range (crop or pad)."""
    k_scale, k_y, k_x = jax.random.split(key, 3)
    s = _uniform(k_scale, *section.scale)
    spare_y, spare_x = height - s * height, width - s * width
    oy = jnp.minimum(spare_y, 0.0) + _uniform(k_y, 0.0, 1.0) * jnp.abs(spare_y)
    ox = jnp.minimum(spare_x, 0.0) + _uniform(k_x, 0.0, 1.0) * jnp.abs(spare_x)
    return zoom(s, s, oy, ox)


def random_translation(key, section, height: int, width: int) -> jax.Array:
    """Pad-and-crop: a whole-pixel shift uniform in [-crop_padding, crop_padding] per axis."""
    del height, width
    p = section.crop_padding
    dy, dx = jax.random.randint(key, (2,), -p, p + 1).astype(jnp.float32)
    return translation(dy, dx)


def random_rotation(key, section, height: int, width: int) -> jax.Array:
    d = section.rotate_degrees
    return rotation(_uniform(key, -d, d), height, width)


def random_flip(key, section, height: int, width: int) -> jax.Array:
    del section, height
    return flip_matrix(jax.random.bernoulli(key), width, axis=1)


def random_vertical_flip(key, section, height: int, width: int) -> jax.Array:
    del section, width
    return flip_matrix(jax.random.bernoulli(key), height, axis=0)


for _name, _fn in (("random_resized_crop", random_resized_crop), ("scale", random_scale),
                   ("crop_padding", random_translation), ("rotate_degrees", random_rotation),
                   ("flip", random_flip), ("vertical_flip", random_vertical_flip)):
    AUGMENTATIONS.register(_name, Op("geometric", _fn))


# -- resampling --------------------------------------------------------------------------------


def source_coordinates(matrix: jax.Array, height: int, width: int) -> tuple[jax.Array, jax.Array]:
    """Input (y, x) of every output pixel centre, each (height, width)."""
    y, x = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32),
                        jnp.arange(width, dtype=jnp.float32), indexing="ij")
    return (matrix[0, 0] * y + matrix[0, 1] * x + matrix[0, 2],
            matrix[1, 0] * y + matrix[1, 1] * x + matrix[1, 2])


def _tap(array, yi, xi, fill):
    height, width = array.shape[:2]
    inside = (yi >= 0) & (yi < height) & (xi >= 0) & (xi < width)
    values = array[jnp.clip(yi, 0, height - 1), jnp.clip(xi, 0, width - 1)]
    inside = inside.reshape(inside.shape + (1,) * (values.ndim - inside.ndim))
    return jnp.where(inside, values, jnp.asarray(fill, values.dtype))


def warp_image(image: jax.Array, matrix: jax.Array) -> jax.Array:
    """Bilinear resample of an HWC float image; neighbours outside the image count as 0
    (scipy.ndimage's ``mode="grid-constant"``)."""
    height, width = image.shape[:2]
    sy, sx = source_coordinates(matrix, height, width)
    y0, x0 = jnp.floor(sy), jnp.floor(sx)
    wy, wx = (sy - y0)[..., None], (sx - x0)[..., None]
    y0, x0 = y0.astype(jnp.int32), x0.astype(jnp.int32)
    top = _tap(image, y0, x0, 0) * (1 - wx) + _tap(image, y0, x0 + 1, 0) * wx
    bottom = _tap(image, y0 + 1, x0, 0) * (1 - wx) + _tap(image, y0 + 1, x0 + 1, 0) * wx
    return top * (1 - wy) + bottom * wy


def warp_mask(mask: jax.Array, matrix: jax.Array, fill: int) -> jax.Array:
    """Nearest-neighbour resample of an (H, W) class map; outside the input is `fill`."""
    height, width = mask.shape[:2]
    sy, sx = source_coordinates(matrix, height, width)
    return _tap(mask, jnp.round(sy).astype(jnp.int32), jnp.round(sx).astype(jnp.int32), fill)


def warp_boxes(boxes: jax.Array, classes: jax.Array, matrix: jax.Array, height: int, width: int,
               min_visible: float) -> tuple[jax.Array, jax.Array]:
    """Boxes (n, 4) xyxy moved with the image: the extent of their four transformed corners,
    clipped to the image. A box keeps its class while at least `min_visible` of its
    transformed area stays inside (and it has width and height); otherwise it becomes
    padding (class -1, box 0), as do boxes that were padding already."""
    forward = jnp.linalg.inv(matrix)  # input centre -> output centre
    x0, y0, x1, y1 = (boxes[:, i] for i in range(4))
    corner_y = jnp.stack([y0, y0, y1, y1], -1) - 0.5
    corner_x = jnp.stack([x0, x1, x0, x1], -1) - 0.5
    out_y = forward[0, 0] * corner_y + forward[0, 1] * corner_x + forward[0, 2] + 0.5
    out_x = forward[1, 0] * corner_y + forward[1, 1] * corner_x + forward[1, 2] + 0.5
    moved = jnp.stack([out_x.min(-1), out_y.min(-1), out_x.max(-1), out_y.max(-1)], -1)
    limits = jnp.array([width, height, width, height], jnp.float32)
    clipped = jnp.clip(moved, 0.0, limits)
    before = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    keep = (classes >= 0) & (w > 0) & (h > 0) & (w * h >= min_visible * before)
    return jnp.where(keep[:, None], clipped, 0.0), jnp.where(keep, classes, -1)
