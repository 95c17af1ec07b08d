"""The `AUGMENTATIONS` registry: the on-device transforms a config names by field.

An entry is an `Op`: its kind says where it runs in the per-example chain and what its
function takes and returns:

- ``geometric``: ``(key, section, height, width) -> (3, 3)`` matrix mapping output pixel
  centres ``(y, x, 1)`` to input ones; the chain composes them and resamples once.
- ``photometric``: ``(key, section, image) -> image`` on one HWC float image in [0, 1].
- ``erase``: the same, after normalisation.
- ``batch``: ``(key, section, batch) -> batch`` over the whole (global) batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from vision_jax.registry import Registry

KINDS = ("geometric", "photometric", "erase", "batch")


@dataclasses.dataclass(frozen=True)
class Op:
    kind: str
    fn: Callable

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"augmentation kind {self.kind!r} is not one of {KINDS}")


AUGMENTATIONS: Registry[Op] = Registry(
    "augmentation", field="config.augment",
    modules=["vision_jax.augment.geometric", "vision_jax.augment.color",
             "vision_jax.augment.mix"])
