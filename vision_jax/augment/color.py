"""Photometric transforms of one HWC float image in [0, 1], and cutout.

Brightness, contrast and saturation follow `PIL.ImageEnhance` (a blend with black, with the
mean grey, with the image's own grey); hue is a rotation in HSV space (dm-pix). They leave
masks and boxes alone. Cutout runs after normalisation, so its 0 is the dataset mean.
"""

from __future__ import annotations

import dm_pix as pix
import jax
import jax.numpy as jnp

from vision_jax.augment.registry import AUGMENTATIONS, Op

# ITU-R 601-2 luma weights: what PIL uses to turn RGB into grey.
LUMA = (0.299, 0.587, 0.114)


def grayscale(image: jax.Array) -> jax.Array:
    """(H, W, 1) luma of an RGB image; a one-channel image is its own grey."""
    if image.shape[-1] == 1:
        return image
    return image[..., :3] @ jnp.asarray(LUMA, image.dtype)[:, None]


def adjust_brightness(image: jax.Array, factor) -> jax.Array:
    return jnp.clip(image * factor, 0.0, 1.0)


def adjust_contrast(image: jax.Array, factor) -> jax.Array:
    mean = grayscale(image).mean()
    return jnp.clip(mean + (image - mean) * factor, 0.0, 1.0)


def adjust_saturation(image: jax.Array, factor) -> jax.Array:
    if image.shape[-1] != 3:
        return image
    grey = grayscale(image)
    return jnp.clip(grey + (image - grey) * factor, 0.0, 1.0)


def adjust_hue(image: jax.Array, delta) -> jax.Array:
    """Hue rotated by `delta` turns; grey images are unchanged."""
    if image.shape[-1] != 3:
        return image
    return jnp.clip(pix.adjust_hue(image, delta), 0.0, 1.0)


def color_jitter(key, section, image: jax.Array) -> jax.Array:
    """Brightness, contrast, then saturation, each by a factor ~ U(1 - s, 1 + s), s >= 0."""
    s = section.color_jitter
    factors = jax.random.uniform(key, (3,), jnp.float32, max(0.0, 1 - s), 1 + s)
    image = adjust_brightness(image, factors[0])
    image = adjust_contrast(image, factors[1])
    return adjust_saturation(image, factors[2])


def random_hue(key, section, image: jax.Array) -> jax.Array:
    return adjust_hue(image, jax.random.uniform(key, (), jnp.float32, -section.hue, section.hue))


def erase(image: jax.Array, top, left, size: int) -> jax.Array:
    """Rows [top, top + size) and columns [left, left + size) set to 0 (clipped to the image)."""
    height, width = image.shape[:2]
    rows = jnp.arange(height)[:, None, None]
    cols = jnp.arange(width)[None, :, None]
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return jnp.where(inside, jnp.zeros((), image.dtype), image)


def cutout(key, section, image: jax.Array) -> jax.Array:
    """A `cutout`-sided square centred on a uniform pixel, partly outside near the edges."""
    height, width = image.shape[:2]
    size = section.cutout
    cy, cx = jax.random.randint(key, (2,), 0, jnp.array([height, width]))
    return erase(image, cy - size // 2, cx - size // 2, size)


AUGMENTATIONS.register("color_jitter", Op("photometric", color_jitter))
AUGMENTATIONS.register("hue", Op("photometric", random_hue))
AUGMENTATIONS.register("cutout", Op("erase", cutout))
