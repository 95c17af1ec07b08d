"""Rotated and mirrored copies of training identities as identities of their own: the
transforms themselves, the expanded view's positions and labels, and the `by_class:` split
suffix (``train@0-6/rot90``) on the real digits."""

from __future__ import annotations

import numpy as np
import pytest

from vision_jax.data.by_class import split_and_variant
from vision_jax.data.sources import open_splits
from vision_jax.data.transformed_identities import (
    VARIANTS,
    TransformedIdentities,
    transform_image,
)
from vision_jax.errors import ConfigError

# A 2x3 one-channel image whose pixels are all distinct.
IMAGE = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)


def test_transforms_turn_and_mirror_as_written():
    assert transform_image(IMAGE, 0, False).tolist() == IMAGE.tolist()
    # One quarter turn counter-clockwise: the last column becomes the first row.
    assert transform_image(IMAGE, 1, False)[..., 0].tolist() == [[2, 5], [1, 4], [0, 3]]
    assert transform_image(IMAGE, 2, False)[..., 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert transform_image(IMAGE, 0, True)[..., 0].tolist() == [[2, 1, 0], [5, 4, 3]]
    # Mirrored first, then turned.
    assert transform_image(IMAGE, 1, True)[..., 0].tolist() == [[0, 3], [1, 4], [2, 5]]
    # All eight transforms of a square image with distinct pixels are distinct.
    square = np.arange(9, dtype=np.uint8).reshape(3, 3, 1)
    images = {transform_image(square, *t).tobytes() for t in VARIANTS["rot90flip"]}
    assert len(images) == 8


def test_each_transform_is_a_new_identity():
    source = [{"image": IMAGE + i, "label": label} for i, label in enumerate((0, 3, 3))]
    view = TransformedIdentities(source, "rot90")
    assert len(view) == 12
    # Position t * len(source) + i: record i under transform t, label * 4 + t.
    assert [view[k]["label"] for k in range(12)] == [0, 12, 12, 1, 13, 13, 2, 14, 14,
                                                     3, 15, 15]
    assert view[7]["image"].tolist() == np.rot90(IMAGE + 1, 2).tolist()
    assert source[1]["label"] == 3  # the source's records are not changed
    assert len(TransformedIdentities(source, "flip")) == 6
    assert TransformedIdentities(source, "rot90flip")[3 * 5 + 2]["label"] == 3 * 8 + 5


def test_split_suffix_names_the_variant():
    assert split_and_variant("train@0-6/rot90", "f") == ("train@0-6", "rot90")
    assert split_and_variant("train@0-6", "f") == ("train@0-6", None)
    with pytest.raises(ConfigError, match=r"^f: unknown identity transform 'rot45'; write one "
                                          r"of flip, rot90, rot90flip after '/'"):
        split_and_variant("train@0-6/rot45", "f")


def test_by_class_expands_only_the_split_that_asks(digits_data_dir):
    splits = {"config.train_split": "train@0-6/rot90", "config.eval_split": "test@7-9"}
    sources, info = open_splits("by_class:builtin:digits", splits, digits_data_dir)
    train, held_out = sources["train@0-6/rot90"], sources["test@7-9"]
    assert len(train) == 4 * 2800 and info.split_sizes["train@0-6/rot90"] == 11200
    assert len(held_out) == 300 and info.split_sizes["test@7-9"] == 300
    plain, _ = open_splits("by_class:builtin:digits", {"s": "train@0-6"}, digits_data_dir)
    plain = plain["train@0-6"]
    for i in (0, 1234, 2799):
        for turns in range(4):
            record = train[turns * 2800 + i]
            assert record["label"] == plain[i]["label"] * 4 + turns
            assert np.array_equal(record["image"], np.rot90(plain[i]["image"], turns))
    assert {train[k]["label"] for k in range(0, len(train), 50)} == set(range(28))
    assert {held_out[i]["label"] for i in range(len(held_out))} == {7, 8, 9}
