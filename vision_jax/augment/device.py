"""What the jitted steps do to a uint8 batch before the model sees it: augmentation (train
only) and normalisation.

Each example's transforms draw from ``fold_in(fold_in(rng, STREAM), index)``, ``index``
being the example's position in the global training stream (the ``index`` key the input
pipeline adds), so an example is augmented alike whatever the process count, the device
count, the sharding strategy or the step a run resumed from. Geometric transforms compose
into one affine map per example and resample image (bilinear), mask (nearest) and boxes
(corners) once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from vision_jax.augment import geometric
from vision_jax.augment.registry import AUGMENTATIONS
from vision_jax.augment.section import AugmentSection

STREAM = 0x5EED  # folded into the step's key: augmentation draws apart from dropout's
_BATCH_STREAM = 0xBA7C  # the batch-level draws (mixup, cutmix), apart from the examples


@dataclasses.dataclass(frozen=True)
class DevicePreprocess:
    """Augmentation and normalisation, as pure functions of a batch.

    mean / std: per-channel (or one value), in [0, 1] pixel units.
    mask_fill: the class of mask pixels a transform brings in from outside (the ignore label).
    min_visible: the fraction of a box's area that must stay in the image to keep it.
    """

    section: AugmentSection = AugmentSection()
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    mask_fill: int = 0
    min_visible: float = 0.25

    def normalize(self, images: jax.Array) -> jax.Array:
        """uint8 (or [0, 255] float) pixels -> float32 ``(x / 255 - mean) / std``."""
        return normalize(images, self.mean, self.std)

    def eval(self, batch: dict) -> dict:
        return _int_targets({**batch, "image": self.normalize(batch["image"])})

    def train(self, batch: dict, rng: jax.Array) -> dict:
        """The batch augmented (every enabled transform) and normalised."""
        names = self.section.enabled()
        if not names:
            return self.eval(batch)
        ops = [(n, AUGMENTATIONS.get(n, field=f"config.augment.{n}")) for n in names]
        key = jax.random.fold_in(rng, STREAM)
        index = example_index(batch)
        keys = jax.vmap(jax.random.fold_in, (None, 0))(key, index)
        image = batch["image"].astype(jnp.float32) / 255.0
        example = {"image": image, **{k: batch[k] for k in ("segmentation", "boxes", "classes")
                                      if k in batch}}
        example = jax.vmap(lambda k, e: self._per_example(k, e, ops))(keys, example)
        out = {**batch, **example}
        batch_ops = [op for name, op in ops if op.kind == "batch"]
        if batch_ops:
            batch_key = jax.random.fold_in(jax.random.fold_in(key, _BATCH_STREAM), index[0])
            out = _mix(batch_key, self.section, out, batch_ops)
        return _int_targets(out)

    def _per_example(self, key: jax.Array, example: dict, ops: list) -> dict:
        image = example["image"]
        height, width = image.shape[:2]
        matrix = jnp.eye(3, dtype=jnp.float32)
        geometric_ops = [(i, op) for i, (_, op) in enumerate(ops) if op.kind == "geometric"]
        for i, op in geometric_ops:
            matrix = matrix @ op.fn(jax.random.fold_in(key, i), self.section, height, width)
        out = dict(example)
        if geometric_ops:
            out["image"] = geometric.warp_image(image, matrix)
            if "segmentation" in example:
                out["segmentation"] = geometric.warp_mask(example["segmentation"], matrix,
                                                          self.mask_fill)
            if "boxes" in example:
                out["boxes"], out["classes"] = geometric.warp_boxes(
                    example["boxes"], example["classes"], matrix, height, width,
                    self.min_visible)
        for i, (_, op) in enumerate(ops):
            if op.kind == "photometric":
                out["image"] = op.fn(jax.random.fold_in(key, i), self.section, out["image"])
        out["image"] = self.normalize(out["image"] * 255.0)
        for i, (_, op) in enumerate(ops):
            if op.kind == "erase":
                out["image"] = op.fn(jax.random.fold_in(key, i), self.section, out["image"])
        return out


# No augmentation; pixels scaled to [0, 1] (the steps' default).
PLAIN = DevicePreprocess()


def _mix(key: jax.Array, section: AugmentSection, batch: dict, batch_ops: list) -> dict:
    if len(batch_ops) == 1:
        return batch_ops[0].fn(key, section, batch)
    # mixup and cutmix both on: one of them per batch, by a fair coin.
    coin_key, key = jax.random.split(key)
    branches = [lambda b, op=op: op.fn(key, section, b) for op in batch_ops]
    return jax.lax.switch(jax.random.randint(coin_key, (), 0, len(branches)), branches, batch)


def _int_targets(batch: dict) -> dict:
    # Class maps travel as uint8; the tasks read int32 (one-hot, ignore-label compares).
    if "segmentation" in batch:
        return {**batch, "segmentation": batch["segmentation"].astype(jnp.int32)}
    return batch


def example_index(batch: dict) -> jax.Array:
    """Each row's position in the training stream; rows 0..B-1 for a batch without one."""
    if "index" in batch:
        return batch["index"]
    return jnp.arange(batch["image"].shape[0], dtype=jnp.int32)


def normalize(images, mean, std):
    """``(x / 255 - mean) / std`` as float32, for jnp or NumPy arrays of [0, 255] pixels."""
    xp = jnp if isinstance(images, jax.Array) else np
    mean = xp.asarray(mean, xp.float32).reshape(-1)
    std = xp.asarray(std, xp.float32).reshape(-1)
    return (xp.asarray(images, xp.float32) / 255.0 - mean) / std


def device_preprocess(augment: AugmentSection, normalize: Any, spec: Any) -> DevicePreprocess:
    """The step's preprocessing for a run: its `AugmentSection`, its normalisation (the data
    section's ``normalize``: ``mean`` and ``std``) and the task's `ExampleSpec` (which keys
    examples carry, the mask fill, the boxes' minimum visible fraction)."""
    augment.check_task(spec.keys)
    return DevicePreprocess(section=augment, mean=tuple(normalize.mean),
                            std=tuple(normalize.std), mask_fill=spec.mask_fill,
                            min_visible=spec.min_visible)
