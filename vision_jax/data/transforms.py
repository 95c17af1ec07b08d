"""Per-example image transforms: NumPy functions, and Grain transforms wrapping them.

The functions take one HWC image (uint8 or float) and, if random, a
`np.random.Generator`; they return float32. The augmentations expect pixel
values in [0, 1] (apply `to_float` first) and run before `normalize`, so
"zero" padding is black.

The Grain classes (`grain.transforms.Map` / `RandomMap`) apply the same function
to ``element["image"]`` of a record dict (other keys pass through), or to the
element itself when it is an array. Grain hands `RandomMap`s a generator seeded
from the pipeline seed and the element's index, which makes augmentation
deterministic and independent of worker count.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import grain
import numpy as np
from PIL import Image

# ITU-R 601-2 luma weights: what PIL uses to turn RGB into grey.
LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], np.float32)


# -- deterministic functions -------------------------------------------------------------------


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8 [0, 255] -> float32 [0, 1]; float images are only cast to float32."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    return image.astype(np.float32, copy=False)


def resize(image: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Bilinear resize of an HWC image to `size` (an int = square), antialiased when shrinking.

    Returns float32; a uint8 image is scaled to [0, 1] first (see `to_float`).
    """
    height, width = (size, size) if isinstance(size, int) else size
    image = to_float(image)
    if image.shape[:2] == (height, width):
        return image
    # A float32 plane becomes PIL mode "F" (full precision); PIL resizes one plane at a time.
    channels = [
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c])).resize(
            (width, height), Image.Resampling.BILINEAR))
        for c in range(image.shape[-1])
    ]
    return np.stack(channels, axis=-1)


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
        luma = grayscale(to_float(image[..., :3]))
        return (luma * 255).round().astype(np.uint8) if image.dtype == np.uint8 else luma
    raise ValueError(
        f"config.image_channels={channels}: cannot convert {have}-channel images; use 1 or 3")


def shift_with_zeros(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """The image moved down by `dy` and right by `dx` pixels; uncovered pixels are 0."""
    height, width = image.shape[:2]
    out = np.zeros_like(image, dtype=np.float32)
    if abs(dy) >= height or abs(dx) >= width:
        return out
    out[max(dy, 0):height + min(dy, 0), max(dx, 0):width + min(dx, 0)] = (
        image[max(-dy, 0):height + min(-dy, 0), max(-dx, 0):width + min(-dx, 0)])
    return out


def flip_horizontal(image: np.ndarray) -> np.ndarray:
    """Mirror left-right."""
    return np.ascontiguousarray(image[:, ::-1])


def rotate(image: np.ndarray, degrees: float) -> np.ndarray:
    """Rotate counter-clockwise (as displayed) about the centre, bilinear, edges replicated.

    Pixels that come from outside the image take the nearest border pixel, so a
    constant image stays constant.
    """
    image = image.astype(np.float32, copy=False)
    if degrees == 0:
        return image.copy()
    height, width = image.shape[:2]
    cy, cx = (height - 1) / 2.0, (width - 1) / 2.0
    cos, sin = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    # Inverse map: where in the input each output pixel centre comes from.
    src_x = np.clip(cx + (x - cx) * cos + (cy - y) * sin, 0, width - 1)
    src_y = np.clip(cy + (x - cx) * sin + (y - cy) * cos, 0, height - 1)
    return _bilinear_sample(image, src_y, src_x)


def _bilinear_sample(image: np.ndarray, src_y: np.ndarray, src_x: np.ndarray) -> np.ndarray:
    """Samples `image` at float coordinates inside it; gathers on a flat (H*W, C) view."""
    height, width, channels = image.shape
    y0 = np.minimum(src_y.astype(np.int32), height - 1)  # floor: coordinates are >= 0
    x0 = np.minimum(src_x.astype(np.int32), width - 1)
    wy = (src_y - y0)[..., None].astype(np.float32)
    wx = (src_x - x0)[..., None].astype(np.float32)
    down = (y0 < height - 1).astype(np.int32) * width  # edge rows: the next row is itself
    right = (x0 < width - 1).astype(np.int32)
    flat = image.reshape(height * width, channels)
    index = y0 * width + x0
    top = flat[index] * (1 - wx) + flat[index + right] * wx
    bottom = flat[index + down] * (1 - wx) + flat[index + down + right] * wx
    return (top * (1 - wy) + bottom * wy).astype(np.float32)


def grayscale(image: np.ndarray) -> np.ndarray:
    """(H, W, 1) luma of an RGB image; single-channel images are returned as they are."""
    image = image.astype(np.float32, copy=False)
    if image.shape[-1] == 1:
        return image
    return (image[..., :3] @ LUMA_WEIGHTS)[..., None]


def adjust_brightness(image: np.ndarray, factor: float) -> np.ndarray:
    """Scales every pixel by `factor` (0 = black), clipped to [0, 1]."""
    # Python floats: a NumPy float64 factor would promote the image to float64.
    return np.clip(image.astype(np.float32) * float(factor), 0.0, 1.0)


def adjust_contrast(image: np.ndarray, factor: float) -> np.ndarray:
    """Blends with the image's mean grey (0 = flat grey, 1 = unchanged), clipped to [0, 1]."""
    mean = float(grayscale(image).mean())
    return np.clip(mean + (image.astype(np.float32) - mean) * float(factor), 0.0, 1.0)


def adjust_saturation(image: np.ndarray, factor: float) -> np.ndarray:
    """Blends RGB with its own grey (0 = grey, 1 = unchanged); grey images are unchanged."""
    if image.shape[-1] != 3:
        return image.astype(np.float32)
    gray = grayscale(image)
    return np.clip(gray + (image.astype(np.float32) - gray) * float(factor), 0.0, 1.0)


def normalize(image: np.ndarray, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """(image - mean) / std per channel, float32. One value broadcasts over all channels."""
    channels = image.shape[-1]
    mean_array = np.asarray(mean, np.float32).reshape(-1)
    std_array = np.asarray(std, np.float32).reshape(-1)
    for name, values in (("mean", mean_array), ("std", std_array)):
        if len(values) not in (1, channels):
            raise ValueError(
                f"config.normalize.{name} has {len(values)} values for a {channels}-channel "
                f"image; give 1 or {channels}")
    if np.any(std_array <= 0):
        raise ValueError(f"config.normalize.std={tuple(std)} must be positive")
    return ((image.astype(np.float32) - mean_array) / std_array).astype(np.float32)


# -- random functions --------------------------------------------------------------------------


def random_crop_with_padding(
    image: np.ndarray, padding: int, rng: np.random.Generator
) -> np.ndarray:
    """Pads `padding` zero pixels on every side, then crops back to the original size.

    Equivalent to a random shift by (dy, dx), each uniform in [-padding, padding].
    """
    if padding <= 0:
        return image.astype(np.float32)
    dy, dx = rng.integers(-padding, padding, size=2, endpoint=True)
    return shift_with_zeros(image, int(dy), int(dx))


def random_flip(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirrors left-right with probability 1/2."""
    return flip_horizontal(image) if rng.random() < 0.5 else image.astype(np.float32)


def random_scale(
    image: np.ndarray, scale_range: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """Zooms by s ~ U(scale_range), then crops (s > 1) or zero-pads (s < 1) back to size.

    The crop or the placement of the shrunk image is uniform over valid offsets.
    """
    low, high = scale_range
    image = image.astype(np.float32, copy=False)
    if low == high == 1.0:
        return image
    height, width = image.shape[:2]
    scale = rng.uniform(low, high)
    new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
    scaled = resize(image, (new_height, new_width))
    out = np.zeros_like(image)
    # Per axis: a negative offset crops the scaled image, a positive one pads it.
    oy = int(rng.integers(min(0, height - new_height), max(0, height - new_height), endpoint=True))
    ox = int(rng.integers(min(0, width - new_width), max(0, width - new_width), endpoint=True))
    out[max(oy, 0):max(oy, 0) + min(new_height, height),
        max(ox, 0):max(ox, 0) + min(new_width, width)] = scaled[
        max(-oy, 0):max(-oy, 0) + min(new_height, height),
        max(-ox, 0):max(-ox, 0) + min(new_width, width)]
    return out


def random_rotate(image: np.ndarray, max_degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Rotates by an angle uniform in [-max_degrees, max_degrees] (see `rotate`)."""
    if max_degrees <= 0:
        return image.astype(np.float32)
    return rotate(image, float(rng.uniform(-max_degrees, max_degrees)))


def color_jitter(image: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast, then saturation, each by a factor ~ U(1 - strength, 1 + strength)."""
    image = image.astype(np.float32)
    if strength <= 0:
        return image
    brightness, contrast, saturation = rng.uniform(max(0.0, 1 - strength), 1 + strength, size=3)
    image = adjust_brightness(image, brightness)
    image = adjust_contrast(image, contrast)
    return adjust_saturation(image, saturation)


# -- Grain transforms --------------------------------------------------------------------------


def _apply_to_image(element: Any, function: Callable[[np.ndarray], np.ndarray]) -> Any:
    if isinstance(element, dict):
        return {**element, "image": function(element["image"])}
    return function(element)


class ToFloat(grain.transforms.Map):
    """uint8 [0, 255] -> float32 [0, 1]."""

    def map(self, element: Any) -> Any:
        return _apply_to_image(element, to_float)


class ConvertChannels(grain.transforms.Map):
    """Grey <-> RGB conversion to `channels` (see `convert_channels`)."""

    def __init__(self, channels: int):
        self.channels = channels

    def map(self, element: Any) -> Any:
        return _apply_to_image(element, lambda image: convert_channels(image, self.channels))


class Resize(grain.transforms.Map):
    """Bilinear resize to `size` x `size` (a no-op for images already that size)."""

    def __init__(self, size: int):
        self.size = size

    def map(self, element: Any) -> Any:
        return _apply_to_image(element, lambda image: resize(image, self.size))


class Normalize(grain.transforms.Map):
    """(image - mean) / std per channel, float32."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        self.mean, self.std = tuple(mean), tuple(std)

    def map(self, element: Any) -> Any:
        return _apply_to_image(element, lambda image: normalize(image, self.mean, self.std))


class RandomCropWithPadding(grain.transforms.RandomMap):
    """Zero-pad by `padding`, then crop a random window of the original size."""

    def __init__(self, padding: int):
        self.padding = padding

    def random_map(self, element: Any, rng: np.random.Generator) -> Any:
        return _apply_to_image(
            element, lambda image: random_crop_with_padding(image, self.padding, rng))


class RandomHorizontalFlip(grain.transforms.RandomMap):
    """Mirror left-right with probability 1/2."""

    def random_map(self, element: Any, rng: np.random.Generator) -> Any:
        return _apply_to_image(element, lambda image: random_flip(image, rng))


class RandomScale(grain.transforms.RandomMap):
    """Zoom by a factor in `scale_range`, then crop or zero-pad back to size."""

    def __init__(self, scale_range: tuple[float, float]):
        self.scale_range = tuple(scale_range)

    def random_map(self, element: Any, rng: np.random.Generator) -> Any:
        return _apply_to_image(element, lambda image: random_scale(image, self.scale_range, rng))


class RandomRotation(grain.transforms.RandomMap):
    """Rotate by an angle uniform in [-max_degrees, max_degrees]."""

    def __init__(self, max_degrees: float):
        self.max_degrees = max_degrees

    def random_map(self, element: Any, rng: np.random.Generator) -> Any:
        return _apply_to_image(element, lambda image: random_rotate(image, self.max_degrees, rng))


class ColorJitter(grain.transforms.RandomMap):
    """Random brightness, contrast and saturation of relative strength `strength`."""

    def __init__(self, strength: float):
        self.strength = strength

    def random_map(self, element: Any, rng: np.random.Generator) -> Any:
        return _apply_to_image(element, lambda image: color_jitter(image, self.strength, rng))


class RandomChain(grain.transforms.RandomMap):
    """Applies transforms in order, drawing all randomness from the one generator."""

    def __init__(self, transforms: Sequence[grain.transforms.Map | grain.transforms.RandomMap]):
        self.transforms = tuple(transforms)

    def random_map(self, element: Any, rng: np.random.Generator) -> Any:
        for transform in self.transforms:
            if isinstance(transform, grain.transforms.RandomMap):
                element = transform.random_map(element, rng)
            else:
                element = transform.map(element)
        return element
