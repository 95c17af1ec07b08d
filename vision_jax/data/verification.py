"""Identity data for verification: records whose label names a person (e.g. `tfds:lfw`,
where the label is the person's name as text) split by *identity*, so that evaluation runs
on people never seen in training.

`split_identities` reads every record's identity once, numbers the identities (sorted
names -> 0, 1, ...), and sends each identity wholly to train or to eval by a seeded draw;
eval identities need `min_eval_images` images (pairs and one-shot identification need two).
The views it returns give records ``{"image", "label": int identity}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vision_jax.errors import ConfigError


def identity_name(value: Any) -> str:
    """A record's identity as text (TFDS `Text` features come back as bytes)."""
    value = np.asarray(value).item() if np.ndim(value) == 0 else value
    return value.decode() if isinstance(value, bytes) else str(value)


class IdentitySubset:
    """Random-access view of some records of `source` with integer identity labels."""

    def __init__(self, source, indices: Sequence[int], identities: Sequence[int],
                 key: str = "label"):
        self._source = source
        self.indices = np.asarray(indices, np.int64)
        self._identities = np.asarray(identities, np.int64)
        self._key = key

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = dict(self._source[int(self.indices[index])])
        record[self._key] = int(self._identities[index])
        return record

    def __repr__(self) -> str:
        return f"IdentitySubset(len={len(self)}, of={self._source!r})"


def split_identities(source, eval_fraction: float = 0.2, seed: int = 0,
                     min_eval_images: int = 2, key: str = "label",
                     field: str = "config.verification.eval_fraction"
                     ) -> tuple[IdentitySubset, IdentitySubset, list[str]]:
    """(train, eval, names): disjoint identities, `eval_fraction` of the identities with at
    least `min_eval_images` images going to eval; names[i] is identity i's name."""
    if not 0 < eval_fraction < 1:
        raise ConfigError(f"{field}={eval_fraction} must lie in (0, 1)")
    labels = [identity_name(source[i][key]) for i in range(len(source))]
    names = sorted(set(labels))
    ids = np.searchsorted(np.asarray(names), np.asarray(labels))
    counts = np.bincount(ids, minlength=len(names))
    eligible = np.flatnonzero(counts >= min_eval_images)
    count = int(round(eval_fraction * len(eligible)))
    if count < 2 or count == len(names):
        raise ConfigError(
            f"{field}={eval_fraction} leaves {count} eval identities (of {len(eligible)} with "
            f">= {min_eval_images} images, {len(names)} in all); evaluation needs at least 2 "
            "and training at least 1: change the fraction")
    held_out = np.random.default_rng(seed).choice(eligible, count, replace=False)
    is_eval = np.isin(ids, held_out)
    train = IdentitySubset(source, np.flatnonzero(~is_eval), ids[~is_eval], key)
    evaluation = IdentitySubset(source, np.flatnonzero(is_eval), ids[is_eval], key)
    return train, evaluation, names
