"""A trained run as (model, variables, input preprocessing), and image files as model inputs.

`restore` is the only place the explain tools touch the training loop
(`vision_jax.training.loop.restore_experiment`) and the run's config fields, so a change
of either is fixed here once.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from typing import Any

import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclasses.dataclass(frozen=True)
class Run:
    """What explaining needs from a trained run."""

    model: Any
    variables: Any
    image_size: int
    channels: int
    mean: np.ndarray  # per-channel normalisation of the model's inputs
    std: np.ndarray
    class_names: tuple[str, ...] | None

    def to_input(self, images: list[np.ndarray],
                 keep_size: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """uint8 (H, W, C) images -> (model inputs (N, S, S, C), display images in [0, 1]).

        ``keep_size``: no resize to the training size (for tools that run the model only up
        to a conv layer, which takes any size).
        """
        shown = np.stack([_to_channels(image, self.channels) if keep_size else
                          _resize(_to_channels(image, self.channels), self.image_size)
                          for image in images])
        return ((shown - self.mean) / self.std).astype(np.float32), shown

    def to_display(self, inputs) -> np.ndarray:
        """Model inputs back to [0, 1] display images (clipped)."""
        return np.clip(np.asarray(inputs) * self.std + self.mean, 0.0, 1.0)


def restore(workdir: str) -> Run:
    """The latest checkpoint of ``workdir`` and its input preprocessing."""
    from vision_jax.training import loop

    exp, state = loop.restore_experiment(workdir)
    config = exp.config
    variables = state.variables()
    channels = int(config.get("image_channels", 0) or _input_channels(variables["params"]))
    mean = np.broadcast_to(np.asarray(config.normalize.mean, np.float32), (channels,))
    std = np.broadcast_to(np.asarray(config.normalize.std, np.float32), (channels,))
    names = getattr(getattr(exp, "info", None), "class_names", None)
    return Run(exp.model, variables, int(config.image_size), channels, mean, std,
               tuple(names) if names else None)


def _input_channels(params: Any) -> int:
    # The first kernel created (dicts keep creation order) reads the image: its input depth.
    for value in params.values():
        if hasattr(value, "values"):
            found = _input_channels(value)
            if found:
                return found
        elif getattr(value, "ndim", 0) == 4:
            return int(value.shape[2])
    return 0


def expand_images(patterns: list[str], flag: str = "--images") -> list[str]:
    """Files named by paths, directories (their images) and glob patterns, in order."""
    files: list[str] = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            files += [os.path.join(pattern, f) for f in sorted(os.listdir(pattern))
                      if f.lower().endswith(IMAGE_SUFFIXES)]
            continue
        matched = sorted(glob.glob(pattern))
        if not matched:
            raise FileNotFoundError(f"{flag} {pattern!r} matches no file")
        files += matched
    if not files:
        raise FileNotFoundError(f"{flag} names no image file")
    return files


def load_image(path: str) -> np.ndarray:
    """A uint8 (H, W, C) array; a file PIL cannot read is an error naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            array = np.asarray(im if im.mode in ("L", "RGB") else im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as e:
        raise FileNotFoundError(f"{path} is not a readable image ({e})") from None
    return array[..., None] if array.ndim == 2 else array


def _to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    image = np.asarray(image, np.float32) / 255.0
    if image.shape[-1] == channels:
        return image
    if channels == 1:
        return image.mean(axis=-1, keepdims=True)
    return np.repeat(image[..., :1], channels, axis=-1)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if image.shape[:2] == (size, size):
        return image
    planes = [np.asarray(Image.fromarray(image[..., c]).resize((size, size),
                                                                 Image.Resampling.BILINEAR))
              for c in range(image.shape[-1])]
    return np.stack(planes, axis=-1)
