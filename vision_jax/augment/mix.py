"""Mixup and cutmix: batch-level blends of examples and of their class labels.

Each example is blended with its mirror in the global batch (row i with row B-1-i), with one
weight per batch drawn from Beta(alpha, alpha); the batch gains ``mix_label`` (the partner's
label) and ``mix_weight`` (per row, all equal: the weight of ``label``), and the train step
takes ``weight * loss(label) + (1 - weight) * loss(mix_label)``. The key is the batch's: it
is derived from its first example's index, so it is the same whatever the device count.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vision_jax.augment.registry import AUGMENTATIONS, Op


def _mixed(batch: dict, image: jax.Array, weight) -> dict:
    size = batch["label"].shape[0]
    return {**batch, "image": image, "mix_label": batch["label"][::-1],
            "mix_weight": jnp.full((size,), weight, jnp.float32)}


def mixup(key, section, batch: dict) -> dict:
    weight = jax.random.beta(key, section.mixup, section.mixup)
    image = batch["image"]
    return _mixed(batch, weight * image + (1 - weight) * image[::-1], weight)


def cut_box(key, weight, height: int, width: int, size: int):
    """(side_y, side_x) of a box of area fraction ~ 1 - weight, and per-row top-left corners
    that keep it wholly inside the image (so the area fraction is exact)."""
    side_y = jnp.round(height * jnp.sqrt(1 - weight)).astype(jnp.int32)
    side_x = jnp.round(width * jnp.sqrt(1 - weight)).astype(jnp.int32)
    k_y, k_x = jax.random.split(key)
    top = jax.random.randint(k_y, (size,), 0, height - side_y + 1)
    left = jax.random.randint(k_x, (size,), 0, width - side_x + 1)
    return side_y, side_x, top, left


def cutmix(key, section, batch: dict) -> dict:
    k_weight, k_box = jax.random.split(key)
    image = batch["image"]
    size, height, width = image.shape[:3]
    weight = jax.random.beta(k_weight, section.cutmix, section.cutmix)
    side_y, side_x, top, left = cut_box(k_box, weight, height, width, size)
    rows = jnp.arange(height)[None, :, None]
    cols = jnp.arange(width)[None, None, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + side_y)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + side_x)[:, None, None]))
    mixed = jnp.where(inside[..., None], image[::-1], image)
    return _mixed(batch, mixed, 1 - side_y * side_x / (height * width))


AUGMENTATIONS.register("mixup", Op("batch", mixup))
AUGMENTATIONS.register("cutmix", Op("batch", cutmix))
