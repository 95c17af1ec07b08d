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

Any of them may end in ``+halves`` (``rot90flip+halves``), and ``halves`` stands alone:
besides the copies, half composites of the split's identities are identities of their
own (`composite_identities`).

A copy that *is* a held-out identity must not be trained on: the digit 6 turned by 180
degrees is a 9. ``~`` names copies to leave out, each as ``<label>r<degrees>``, with the
degrees of the counter-clockwise turn (0, 90, 180 or 270) and a trailing ``m`` for the
mirror image, separated by commas: ``rot90flip+halves~6r180`` keeps the other 55 of the 56
copies of the digits 0-6 when 9 is held out (and ``~9r180`` is the one to drop when 6 is).

Rotating a non-square image swaps its height and width; the pipeline's resize to
`config.image_size` then squares it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np

from vision_jax.data.composite_identities import (
    COMPOSITES_PER_IMAGE,
    ConcatenatedSource,
    HalfComposites,
)
from vision_jax.errors import ConfigError

# variant -> [(quarter turns, mirrored)], in the order of the identity offsets t.
VARIANTS: dict[str, list[tuple[int, bool]]] = {
    "flip": [(0, False), (0, True)],
    "rot90": [(turns, False) for turns in range(4)],
    "rot90flip": [(turns, mirrored) for mirrored in (False, True) for turns in range(4)],
}


HALVES = "halves"


def parse_variant(variant: str, field: str) -> tuple[str | None, bool]:
    """``"rot90flip+halves"`` -> ("rot90flip", True); ``"rot90"`` -> ("rot90", False);
    ``"halves"`` -> (None, True); a one-line error naming `field` for anything else."""
    base, plus, extra = (part.strip() for part in variant.partition("+"))
    if base == HALVES and not plus:
        return None, True
    if base not in VARIANTS or (plus and extra != HALVES):
        raise ConfigError(f"{field}: unknown identity transform {variant!r}; write one of "
                          f"{', '.join(VARIANTS)} after '/', optionally followed by "
                          f"'+{HALVES}' (or '{HALVES}' alone), e.g. 'train@0-6/rot90'")
    return base, bool(plus)


EXCLUDE = "~"
_COPY = re.compile(r"^(\d+)r(\d+)(m?)$")


def split_exclusions(variant: str, field: str) -> tuple[str, frozenset[tuple[int, int, bool]]]:
    """``"rot90flip+halves~6r180,6r180m"`` -> ("rot90flip+halves", {(6, 2, False),
    (6, 2, True)}): the copies to leave out as (label, quarter turns, mirrored), each one a
    copy that the variant makes; a one-line error naming `field` otherwise."""
    variant, sep, excluded = (part.strip() for part in variant.partition(EXCLUDE))
    if not sep:
        return variant, frozenset()
    base, _ = parse_variant(variant, field)
    if base is None:
        raise ConfigError(f"{field}: {variant!r} makes no turned or mirrored copies for "
                          f"'{EXCLUDE}{excluded}' to leave out")
    made = VARIANTS[base]
    copies = []
    for token in (part.strip() for part in excluded.split(",")):
        match = _COPY.match(token)
        degrees = int(match.group(2)) if match else -1
        transform = (degrees // 90, bool(match.group(3))) if degrees % 90 == 0 else None
        if transform not in made:
            names = ", ".join(f"{turns * 90}{'m' if mirrored else ''}"
                              for turns, mirrored in made)
            raise ConfigError(
                f"{field}: {token!r} after '{EXCLUDE}' is not a copy that {variant!r} makes; "
                f"write <label>r<turn> with <turn> one of {names} (degrees counter-clockwise; "
                f"m: of the mirror image), e.g. '{EXCLUDE}6r180'")
        copies.append((int(match.group(1)), *transform))
    return variant, frozenset(copies)


def check_variant(variant: str, field: str) -> list[tuple[int, bool]]:
    """The transforms of `variant` (only the untransformed image for ``halves``); a
    one-line error naming `field` for an unknown variant or copy to leave out."""
    variant, _ = split_exclusions(variant, field)
    base, _ = parse_variant(variant, field)
    return VARIANTS[base] if base else [(0, False)]


def transform_image(image: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    """`image` (H, W, C) mirrored left-right (first), then turned `turns` quarter turns
    counter-clockwise."""
    if mirrored:
        image = image[:, ::-1]
    return np.ascontiguousarray(np.rot90(image, turns, axes=(0, 1)))


class TransformedIdentities:
    """Random-access view of `source` `count` times over: position ``t * len(source) + i`` is
    record i under transform t, labelled ``label * count + t``.

    The `excluded` copies, (label, quarter turns, mirrored), are left out, which needs the
    source's `labels` (in order); the other copies keep their order and close up.
    """

    def __init__(self, source, variant: str, key: str = "label",
                 field: str = "config.train_split",
                 excluded: Collection[tuple[int, int, bool]] = (),
                 labels: Sequence[int] | None = None):
        self._source = source
        self.variant = variant
        if variant not in VARIANTS:
            check_variant(variant, field)  # a one-line error for an unknown variant
            raise ValueError(f"{variant!r}: TransformedIdentities makes the copies only; "
                             "`expand_identities` adds the half composites")
        self.transforms = VARIANTS[variant]
        self._key = key
        # The (transform, record) positions kept; None when every copy is.
        self._kept: np.ndarray | None = None
        if excluded:
            if labels is None:
                raise ValueError("leaving copies out needs the source's labels")
            labels = np.asarray(labels)
            missing = sorted({label for label, _, _ in excluded} - set(labels.tolist()))
            if missing:
                raise ConfigError(f"{field}: the copies to leave out name label(s) "
                                  f"{', '.join(map(str, missing))}, which the split does "
                                  "not hold")
            keep = np.ones((len(self.transforms), len(source)), bool)
            for label, turns, mirrored in excluded:
                keep[self.transforms.index((turns, mirrored)), labels == label] = False
            self._kept = np.argwhere(keep)

    def __len__(self) -> int:
        if self._kept is not None:
            return len(self._kept)
        return len(self._source) * len(self.transforms)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if self._kept is not None:
            transform, inner = (int(v) for v in self._kept[int(index)])
        else:
            transform, inner = divmod(int(index), len(self._source))
        record = dict(self._source[inner])
        record["image"] = transform_image(np.asarray(record["image"]),
                                          *self.transforms[transform])
        record[self._key] = int(record[self._key]) * len(self.transforms) + transform
        return record

    def __repr__(self) -> str:
        return (f"TransformedIdentities(variant={self.variant!r}, len={len(self)}, "
                f"of={self._source!r})")


def expand_identities(source, variant: str, labels: np.ndarray, key: str = "label",
                      field: str = "config.train_split"):
    """`source` (whose records have the identities `labels`, in order) expanded as `variant`
    says: its transformed copies but those named after ``~``, then, for ``+halves``,
    ``COMPOSITES_PER_IMAGE * len(source)`` half composites, labelled above every transformed
    copy's label."""
    variant, excluded = split_exclusions(variant, field)
    base, halves = parse_variant(variant, field)
    copies = (TransformedIdentities(source, base, key, field, excluded, labels) if base
              else source)
    if not halves:
        return copies
    count = len(copies.transforms) if base else 1
    composites = HalfComposites(
        source, labels, COMPOSITES_PER_IMAGE * len(source),
        label_base=(int(np.max(labels)) + 1) * count,
        # Two halves of one identity are that identity, untransformed.
        same_label=lambda label: label * count, key=key)
    return ConcatenatedSource([copies, composites])
