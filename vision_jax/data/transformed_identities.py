"""More training identities from the same images: each rotation by a multiple of 90 degrees
(and optionally each mirror image) of an identity counts as an identity of its own.

Metric learning on a handful of identities (the digits 0-6) learns to tell those apart and
little else; the embedding then carries over to unseen identities only in part. Rotated and
mirrored copies are new shapes with the same strokes, and many more of them: "4 rotated by
90 degrees" must be told apart from "4" and from every other one. The same trick turns
Omniglot's 1,200 training characters into 4,800 classes in the one-shot learning
literature (Santoro et al. 2016; Vinyals et al. 2016). Only training splits are expanded: the
held-out identities are evaluated as they are.

A variant names the transforms, each a new identity ``label * count + t``:

- ``flip``: the image and its mirror image (2);
- ``rot90``: rotations by 0, 90, 180 and 270 degrees (4);
- ``rot90flip``: those four, and the four of the mirror image (8).

Rotating a non-square image swaps its height and width; the pipeline's resize to
`config.image_size` then squares it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vision_jax.errors import ConfigError

# variant -> [(quarter turns, mirrored)], in the order of the identity offsets t.
VARIANTS: dict[str, list[tuple[int, bool]]] = {
    "flip": [(0, False), (0, True)],
    "rot90": [(turns, False) for turns in range(4)],
    "rot90flip": [(turns, mirrored) for mirrored in (False, True) for turns in range(4)],
}


def check_variant(variant: str, field: str) -> list[tuple[int, bool]]:
    """The transforms of `variant`; a one-line error naming `field` for an unknown one."""
    if variant not in VARIANTS:
        raise ConfigError(f"{field}: unknown identity transform {variant!r}; write one of "
                          f"{', '.join(VARIANTS)} after '/', e.g. 'train@0-6/rot90'")
    return VARIANTS[variant]


def transform_image(image: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    """`image` (H, W, C) mirrored left-right (first), then turned `turns` quarter turns
    counter-clockwise."""
    if mirrored:
        image = image[:, ::-1]
    return np.ascontiguousarray(np.rot90(image, turns, axes=(0, 1)))


class TransformedIdentities:
    """Random-access view of `source` `count` times over: position ``t * len(source) + i`` is
    record i under transform t, labelled ``label * count + t``."""

    def __init__(self, source, variant: str, key: str = "label",
                 field: str = "config.train_split"):
        self._source = source
        self.variant = variant
        self.transforms = check_variant(variant, field)
        self._key = key

    def __len__(self) -> int:
        return len(self._source) * len(self.transforms)

    def __getitem__(self, index: int) -> dict[str, Any]:
        transform, inner = divmod(int(index), len(self._source))
        record = dict(self._source[inner])
        record["image"] = transform_image(np.asarray(record["image"]),
                                          *self.transforms[transform])
        record[self._key] = int(record[self._key]) * len(self.transforms) + transform
        return record

    def __repr__(self) -> str:
        return (f"TransformedIdentities(variant={self.variant!r}, len={len(self)}, "
                f"of={self._source!r})")
