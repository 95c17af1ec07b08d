"""One vocabulary of on-device augmentations over keyed examples (image, mask, boxes), applied
inside the jitted train step; `config.augment` names them (see `AugmentSection`)."""

from vision_jax.augment.device import (
    PLAIN,
    DevicePreprocess,
    device_preprocess,
    example_index,
    normalize,
)
from vision_jax.augment.registry import AUGMENTATIONS, Op
from vision_jax.augment.section import ORDER, AugmentSection, augment_section

__all__ = ["AUGMENTATIONS", "ORDER", "PLAIN", "AugmentSection", "DevicePreprocess", "Op",
           "augment_section", "device_preprocess", "example_index", "normalize"]
