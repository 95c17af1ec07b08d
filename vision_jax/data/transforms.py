"""The host's whole share of preprocessing: fixed-size resize and channel conversion of
decoded uint8 examples, and stacking them into a batch. Nothing random happens here; the
augmentations run on device (`vision_jax.augment`).

One path for train, eval and `predict`: `prepare` takes an example ``{"image": uint8 HWC,
...targets}`` whose targets are any of ``label``, ``segmentation`` (uint8 (H, W) classes)
and ``boxes`` (float32 (n, 4) xyxy pixels) with ``classes`` (int32 (n,)); `stack` turns a
list of prepared examples into a batch of arrays. Images stay uint8 (a quarter of float32's
bytes to move); boxes are padded to a fixed count with class -1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

# ITU-R 601-2 luma weights: what PIL uses to turn RGB into grey.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)
_DTYPES = {"image": np.uint8, "label": np.int32, "labels": np.float32, "segmentation": np.uint8,
           "boxes": np.float32, "classes": np.int32, "index": np.int32, "mask": np.float32}


def to_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 images pass; float images in [0, 1] become uint8 (rounded)."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    return (np.clip(image.astype(np.float32), 0.0, 1.0) * 255.0).round().astype(np.uint8)


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """To `channels` (1 or 3): grey -> RGB repeats, RGB -> grey is the luma, RGBA drops alpha."""
    have = image.shape[-1]
    if have == channels:
        return image
    if channels == 3 and have == 1:
        return np.repeat(image, 3, axis=-1)
    if channels == 3 and have == 4:
        return image[..., :3]
    if channels == 1 and have in (3, 4):
        luma = image[..., :3].astype(np.float32) @ LUMA_WEIGHTS
        return luma.round().clip(0, 255).astype(np.uint8)[..., None]
    raise ValueError(
        f"config.image_channels={channels}: cannot convert {have}-channel images; use 1 or 3")


def resize_image(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bilinear (antialiased when shrinking) resize of a uint8 HWC image to `size`."""
    height, width = (size, size) if isinstance(size, int) else size
    if image.shape[:2] == (height, width):
        return image
    channels = image.shape[-1]
    if channels in (1, 3, 4):
        pil = Image.fromarray(image[..., 0] if channels == 1 else image)
        out = np.asarray(pil.resize((width, height), Image.Resampling.BILINEAR))
        return out.reshape(height, width, channels)
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
        (width, height), Image.Resampling.BILINEAR)) for c in range(channels)]
    return np.stack(planes, axis=-1)


def resize_mask(mask: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) uint8 class map (pixel centres to pixel centres)."""
    height, width = (size, size) if isinstance(size, int) else size
    if mask.shape[:2] == (height, width):
        return mask
    return np.asarray(Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST))


def pad_boxes(boxes: np.ndarray, classes: np.ndarray, max_boxes: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """(max_boxes, 4) boxes and (max_boxes,) classes, padded with class -1 (the first
    `max_boxes` are kept)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)[:max_boxes]
    classes = np.asarray(classes, np.int32).reshape(-1)[:max_boxes]
    padded_boxes = np.zeros((max_boxes, 4), np.float32)
    padded_classes = np.full((max_boxes,), -1, np.int32)
    padded_boxes[:len(boxes)] = boxes
    padded_classes[:len(classes)] = classes
    return padded_boxes, padded_classes


def prepare(example: dict[str, Any], size: int, channels: int = 0,
            max_boxes: int = 0) -> dict[str, Any]:
    """One example at the model's input size: image uint8 (size, size, C) in `channels`
    (0 = as decoded), mask resized nearest, boxes scaled with the image and padded."""
    image = to_uint8(example["image"])
    if image.ndim == 2:
        image = image[..., None]
    if channels:
        image = convert_channels(image, channels)
    height, width = image.shape[:2]
    out = {**example, "image": resize_image(image, size)}
    if "segmentation" in example:
        out["segmentation"] = resize_mask(np.asarray(example["segmentation"], np.uint8), size)
    if "boxes" in example:
        factor = np.asarray([size / width, size / height] * 2, np.float32)
        out["boxes"], out["classes"] = pad_boxes(
            np.asarray(example["boxes"], np.float32).reshape(-1, 4) * factor,
            example["classes"], max_boxes)
    return out


def stack(examples: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Prepared examples -> one batch: every key stacked, in its wire dtype."""
    batch = {key: np.stack([np.asarray(e[key]) for e in examples]) for key in examples[0]}
    return {key: value.astype(_DTYPES[key], copy=False) if key in _DTYPES else value
            for key, value in batch.items()}
