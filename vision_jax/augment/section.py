"""`config.augment` as a typed, frozen section: which on-device transforms a run applies, and
their parameters.

Every transform is one field; its "off" value disables it. The enabled ones run in the fixed
order of `ORDER` (geometric, then photometric, then erasing after normalisation, then the
batch-level mixes), each looked up by its field name in `vision_jax.augment.AUGMENTATIONS`.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from vision_jax.errors import ConfigError
from vision_jax.sections import build, in_range, non_negative, option

# The order the enabled transforms run in; each name is a field below and a registered op.
ORDER = ("random_resized_crop", "scale", "crop_padding", "rotate_degrees", "flip",
         "vertical_flip", "color_jitter", "hue", "cutout", "mixup", "cutmix")


def _range(low_bound: float, *, at_most_one: bool = False):
    def check(value) -> str | None:
        low, high = value
        if not low_bound < low <= high or (at_most_one and high > 1):
            upper = " <= 1" if at_most_one else ""
            return f"must be (min, max) with {low_bound} < min <= max{upper}"
        return None
    return check


@dataclasses.dataclass(frozen=True)
class AugmentSection:
    """The training-time transforms; every one is sampled once per example on device."""

    random_resized_crop: tuple[float, float] = option(
        (1.0, 1.0), "Inception crop: (min, max) fraction of the image's area kept, resized back "
        "to image_size ((1.0, 1.0) = off)", check=_range(0.0, at_most_one=True))
    crop_ratio: tuple[float, float] = option(
        (3 / 4, 4 / 3), "aspect-ratio range (width / height) of the random resized crop",
        check=_range(0.0))
    scale: tuple[float, float] = option(
        (1.0, 1.0), "zoom by a factor in (min, max), placed at a uniform offset: crops when "
        "> 1, pads when < 1 ((1.0, 1.0) = off)", check=_range(0.0))
    crop_padding: int = option(
        0, "pad-and-crop: translate by up to this many pixels on each axis (0 = off)",
        check=non_negative)
    rotate_degrees: float = option(
        0.0, "rotate about the centre by an angle uniform in +/- this many degrees (0 = off)",
        check=in_range(0.0, 180.0))
    flip: bool = option(False, "mirror left-right with probability 1/2")
    vertical_flip: bool = option(False, "mirror top-bottom with probability 1/2")
    color_jitter: float = option(
        0.0, "brightness, contrast and saturation, each by a factor in 1 +/- this (0 = off)",
        check=non_negative)
    hue: float = option(0.0, "shift the hue by up to +/- this fraction of a turn (0 = off)",
                        check=in_range(0.0, 0.5))
    cutout: int = option(0, "erase a square of this side (pixels) at a uniform centre; it "
                            "takes the normalised value 0, the dataset mean (0 = off)",
                         check=non_negative)
    mixup: float = option(0.0, "mixup's Beta(alpha, alpha) (0 = off; classification only)",
                          check=non_negative)
    cutmix: float = option(0.0, "cutmix's Beta(alpha, alpha) (0 = off; classification only)",
                           check=non_negative)

    def enabled(self) -> tuple[str, ...]:
        """Names of the transforms that are on, in the order they run."""
        off = {"random_resized_crop": (1.0, 1.0), "scale": (1.0, 1.0)}
        return tuple(name for name in ORDER
                     if getattr(self, name) != off.get(name, type(getattr(self, name))()))

    def check_task(self, keys: frozenset[str]) -> None:
        """Batch-level mixes blend labels: only a task whose examples carry a class label."""
        for name in ("mixup", "cutmix"):
            if getattr(self, name) and "label" not in keys:
                raise ConfigError(f"config.augment.{name}={getattr(self, name)} mixes class "
                                  "labels, which this task has not; set it to 0")


def augment_section(augment: ml_collections.ConfigDict | None) -> AugmentSection:
    """The section of `config.augment` (one-line `ConfigError`s naming the field)."""
    return build(AugmentSection, augment, "config.augment")
