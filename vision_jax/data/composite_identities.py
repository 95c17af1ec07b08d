"""More training identities from parts of the ones there are: the top half of an image of
identity a over the bottom half of an image of identity b is an image of identity (a, b).

Held-out digits are new arrangements of the strokes the training digits already have: a 9
is a loop over a stem, an 8 a loop over a loop. Training on the digits 0-6 alone, the
embedding never has to tell such arrangements apart; half composites make it. The
composites of a training split are a fixed set, drawn once from a seeded generator (the
same on every host and in every epoch); a composite of two halves of the same identity is
an image of that identity and keeps its label. Only training splits are expanded: held-out
identities are evaluated as they are.

Chosen on validation identities of the train split, never on the held-out test digits
(docs/multilabel_and_verification.md): top-over-bottom halves beat left-beside-right ones
and both together, and 4 composites per training image beat 8 beside the 8 rotated and
mirrored copies of `transformed_identities`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# Composites per image of the split, beside its `transformed_identities` copies.
COMPOSITES_PER_IMAGE = 4


def stack_halves(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """The top half of `top` (rows ``[:H // 2]``) over the bottom half of `bottom`, which is
    first resized (nearest neighbour) to `top`'s height and width if its size differs."""
    height, width = top.shape[:2]
    if bottom.shape[:2] != (height, width):
        rows = np.arange(height) * bottom.shape[0] // height
        cols = np.arange(width) * bottom.shape[1] // width
        bottom = bottom[rows][:, cols]
    return np.concatenate([top[:height // 2], bottom[height // 2:]], axis=0)


class HalfComposites:
    """`size` composites of the records of `source`, whose labels are `labels` (one per
    record, in order). Position k draws identities a and b (uniformly among the labels)
    and one record of each from ``np.random.default_rng((seed, k))``.

    Labels: a composite of a and b != a is ``label_base + rank(a) * n + rank(b)`` (n
    identities, ranked in ascending order), so `label_base` must lie above every label the
    training split uses elsewhere; one of a and a takes ``same_label(a)``.
    """

    def __init__(self, source, labels: Sequence[int], size: int, label_base: int,
                 same_label=lambda label: label, seed: int = 0, key: str = "label"):
        self._source = source
        labels = np.asarray(labels)
        self.identities = np.unique(labels)
        self._records = [np.flatnonzero(labels == identity) for identity in self.identities]
        self._size = int(size)
        self._label_base = int(label_base)
        self._same_label = same_label
        self._seed = seed
        self._key = key

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= int(index) < self._size:
            raise IndexError(f"composite {index} of {self._size}")
        rng = np.random.default_rng((self._seed, int(index)))
        a, b = rng.integers(len(self.identities), size=2)
        top = dict(self._source[int(rng.choice(self._records[a]))])
        bottom = self._source[int(rng.choice(self._records[b]))]
        top["image"] = stack_halves(np.asarray(top["image"]), np.asarray(bottom["image"]))
        top[self._key] = (int(self._same_label(int(self.identities[a]))) if a == b else
                          self._label_base + int(a) * len(self.identities) + int(b))
        return top

    def __repr__(self) -> str:
        return (f"HalfComposites(identities={len(self.identities)}, len={self._size}, "
                f"of={self._source!r})")


class ConcatenatedSource:
    """Random-access view of several sources one after the other."""

    def __init__(self, sources: Sequence):
        self._sources = list(sources)
        self._ends = np.cumsum([len(source) for source in self._sources])

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def __getitem__(self, index: int) -> dict[str, Any]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"record {index} of {len(self)}")
        part = int(np.searchsorted(self._ends, index, side="right"))
        start = int(self._ends[part - 1]) if part else 0
        return self._sources[part][index - start]

    def __repr__(self) -> str:
        return f"ConcatenatedSource({self._sources!r})"
