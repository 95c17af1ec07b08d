"""Rotated and mirrored copies and half composites of training identities as identities of
their own: the transforms themselves, the expanded views' positions and labels, and the
`by_class:` split suffix (``train@0-6/rot90``, ``train@0-6/rot90flip+halves``) on the real
digits."""

from __future__ import annotations

import re

import numpy as np
import pytest

from vision_jax.data.by_class import in_memory_if_small, split_and_variant
from vision_jax.data.composite_identities import (
    ConcatenatedSource,
    HalfComposites,
    stack_halves,
)
from vision_jax.data.sources import open_splits
from vision_jax.data.transformed_identities import (
    VARIANTS,
    TransformedIdentities,
    check_variant,
    expand_identities,
    parse_variant,
    split_exclusions,
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
                                          r"of flip, rot90, rot90flip after '/', optionally "
                                          r"followed by '\+halves'"):
        split_and_variant("train@0-6/rot45", "f")
    assert split_and_variant("train@0-6/rot90flip+halves", "f") == ("train@0-6",
                                                                    "rot90flip+halves")
    assert parse_variant("rot90flip+halves", "f") == ("rot90flip", True)
    assert parse_variant("halves", "f") == (None, True)
    assert parse_variant("flip", "f") == ("flip", False)
    for bad in ("rot90+thirds", "halves+rot90", "rot90+", "+halves"):
        expected = f"^f: unknown identity transform {re.escape(repr(bad))};"
        with pytest.raises(ConfigError, match=expected):
            parse_variant(bad, "f")


def test_stack_halves_puts_one_top_over_another_bottom():
    top = np.zeros((5, 4, 1), np.uint8)
    bottom = np.full((5, 4, 1), 9, np.uint8)
    stacked = stack_halves(top, bottom)
    assert stacked.shape == (5, 4, 1)
    assert stacked[:2].max() == 0 and stacked[2:].min() == 9  # rows [:5 // 2] from the top
    # A bottom image of another size is resized to the top's first (nearest neighbour:
    # rows 0, 2, 5, 7 and columns 0, 2, 4, 6, 8 of the 10x10), then its rows 2: are kept.
    big = np.arange(100, dtype=np.uint8).reshape(10, 10, 1)
    stacked = stack_halves(np.zeros((4, 5, 1), np.uint8), big)
    assert stacked.shape == (4, 5, 1)
    assert stacked[2:, :, 0].tolist() == [[50, 52, 54, 56, 58], [70, 72, 74, 76, 78]]


def test_half_composites_are_seeded_and_labelled_by_their_two_identities():
    # Six records of identities 2, 5 and 7; each image a constant that names its record.
    labels = [2, 5, 7, 2, 5, 7]
    source = [{"image": np.full((4, 3, 1), 10 * i, np.uint8), "label": label, "name": i}
              for i, label in enumerate(labels)]
    view = HalfComposites(source, labels, size=60, label_base=100,
                          same_label=lambda label: -label)
    assert len(view) == 60
    seen = set()
    for k in range(60):
        record = view[k]
        top, bottom = int(record["image"][0, 0, 0]) // 10, int(record["image"][-1, 0, 0]) // 10
        assert record["name"] == top  # the top half's record carries the other fields
        a, b = labels[top], labels[bottom]
        expected = -a if a == b else 100 + [2, 5, 7].index(a) * 3 + [2, 5, 7].index(b)
        assert record["label"] == expected
        seen.add(record["label"])
        assert np.array_equal(view[k]["image"], record["image"])  # the same on every read
    assert len(seen) == 9  # all 6 ordered pairs and the 3 same-identity ones appear
    assert source[0]["label"] == 2 and source[0]["image"].max() == 0  # sources not changed
    other = HalfComposites(source, labels, size=60, label_base=100, seed=1)
    assert any(not np.array_equal(view[k]["image"], other[k]["image"]) for k in range(60))
    with pytest.raises(IndexError):
        view[60]


def test_concatenated_source_reads_its_parts_in_order():
    joined = ConcatenatedSource([[{"i": 0}, {"i": 1}], [], [{"i": 2}]])
    assert len(joined) == 3 and [joined[k]["i"] for k in range(3)] == [0, 1, 2]
    with pytest.raises(IndexError):
        joined[3]


def test_halves_come_after_the_copies_and_above_their_labels():
    source = [{"image": IMAGE + i, "label": label} for i, label in enumerate((0, 3, 3))]
    view = expand_identities(source, "flip+halves", np.array([0, 3, 3]))
    assert len(view) == 2 * 3 + 4 * 3
    assert [view[k]["label"] for k in range(6)] == [0, 6, 6, 1, 7, 7]
    # Composites: 0 over 0 is identity 0 (label 0 * 2), 3 over 3 is 3 (6); the others are
    # 8 + rank(a) * 2 + rank(b) = 9 (0 over 3) or 10 (3 over 0).
    assert {view[k]["label"] for k in range(6, 18)} <= {0, 6, 9, 10}
    alone = expand_identities(source, "halves", np.array([0, 3, 3]))
    assert len(alone) == 3 + 12 and [alone[k]["label"] for k in range(3)] == [0, 3, 3]
    assert {alone[k]["label"] for k in range(3, 15)} <= {0, 3, 5, 6}


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


def test_by_class_adds_half_composites_of_the_training_digits(digits_data_dir):
    splits = {"config.train_split": "train@0-6/rot90flip+halves",
              "config.eval_split": "test@7-9"}
    sources, info = open_splits("by_class:builtin:digits", splits, digits_data_dir)
    train = sources["train@0-6/rot90flip+halves"]
    assert len(train) == 8 * 2800 + 4 * 2800 == info.split_sizes[splits["config.train_split"]]
    plain, _ = open_splits("by_class:builtin:digits", {"s": "train@0-6"}, digits_data_dir)
    plain = plain["train@0-6"]
    images = np.stack([plain[i]["image"] for i in range(len(plain))])
    digits = np.array([plain[i]["label"] for i in range(len(plain))])
    assert train[5 * 2800 + 17]["label"] == digits[17] * 8 + 5  # the copies come first
    labels = set()
    for k in range(8 * 2800, len(train), 97):
        record = train[k]
        # The top half is the top half of a training image, the bottom another's bottom.
        tops = np.flatnonzero((images[:, :14] == record["image"][:14]).all((1, 2, 3)))
        bottoms = np.flatnonzero((images[:, 14:] == record["image"][14:]).all((1, 2, 3)))
        assert len(tops) and len(bottoms)
        a, b = digits[tops[0]], digits[bottoms[0]]
        assert record["label"] == (a * 8 if a == b else 56 + a * 7 + b)
        labels.add(record["label"])
    assert len(labels) > 40  # of the 49 pairs
    assert {sources["test@7-9"][i]["label"] for i in range(300)} == {7, 8, 9}


def test_a_small_split_to_expand_is_decoded_once():
    class Counting:
        reads = 0

        def __len__(self):
            return 3

        def __getitem__(self, index):
            Counting.reads += 1
            return {"image": IMAGE + index, "label": index}

    records = in_memory_if_small(Counting())
    assert isinstance(records, list) and Counting.reads == 4  # one estimate, three reads
    view = expand_identities(records, "rot90flip+halves", np.array([0, 1, 2]))
    assert [view[k]["label"] for k in range(3)] == [0, 8, 16]
    assert len([view[k] for k in range(len(view))]) == 3 * 8 + 4 * 3
    assert Counting.reads == 4  # the 36 views read the list, not the source
    big = Counting()
    assert in_memory_if_small(big, limit_bytes=10) is big  # 3 x 6 bytes is over 10


def test_copies_to_leave_out_are_parsed_and_checked():
    assert split_exclusions("rot90flip+halves~6r180, 6r180m", "f") == (
        "rot90flip+halves", frozenset({(6, 2, False), (6, 2, True)}))
    assert split_exclusions("rot90~9r270", "f") == ("rot90", frozenset({(9, 3, False)}))
    assert split_exclusions("flip", "f") == ("flip", frozenset())
    assert split_and_variant("train@0-6/rot90flip~6r180", "f") == ("train@0-6",
                                                                  "rot90flip~6r180")
    # A copy the variant does not make, a malformed one, an empty list: each a one-line
    # error naming the field and the copies there are.
    for variant, token in (("rot90~6r180m", "6r180m"), ("rot90flip~6r45", "6r45"),
                           ("flip~six", "six"), ("rot90flip~6r180,", "")):
        with pytest.raises(ConfigError, match=f"^f: {re.escape(repr(token))} after '~' is "
                                              "not a copy that .* makes; write <label>r<turn> "
                                              "with <turn> one of 0, "):
            split_exclusions(variant, "f")
    with pytest.raises(ConfigError, match="^f: 'halves' makes no turned or mirrored copies "
                                          "for '~6r180' to leave out$"):
        check_variant("halves~6r180", "f")
    with pytest.raises(ConfigError, match="^f: unknown identity transform 'rot45'"):
        split_exclusions("rot45~6r180", "f")


def test_left_out_copies_close_up_and_keep_the_others_labels():
    labels = np.array([0, 3, 3])
    source = [{"image": IMAGE + i, "label": label} for i, label in enumerate(labels)]
    view = TransformedIdentities(source, "rot90", excluded={(3, 2, False)}, labels=labels)
    full = TransformedIdentities(source, "rot90")
    # Records 1 and 2 (label 3) under transform 2 (positions 7 and 8) are gone.
    kept = [k for k in range(12) if k not in (7, 8)]
    assert len(view) == 10
    for k, position in enumerate(kept):
        assert view[k]["label"] == full[position]["label"]
        assert np.array_equal(view[k]["image"], full[position]["image"])
    assert 14 not in {view[k]["label"] for k in range(10)}
    with pytest.raises(ValueError, match="needs the source's labels"):
        TransformedIdentities(source, "rot90", excluded={(3, 2, False)})
    with pytest.raises(ConfigError, match=r"^f: the copies to leave out name label\(s\) 5, "
                                          "which the split does not hold$"):
        TransformedIdentities(source, "rot90", field="f", excluded={(5, 2, False)},
                              labels=labels)
    # The half composites are unchanged: two halves of a 3 are still a 3 (3 * 4 = 12), and
    # the others are 16 + rank(a) * 2 + rank(b): 17 (0 over 3) or 18 (3 over 0).
    expanded = expand_identities(source, "rot90+halves~3r180", labels)
    assert len(expanded) == 10 + 4 * 3
    assert {expanded[k]["label"] for k in range(10, 22)} <= {0, 12, 17, 18}


def test_by_class_leaves_out_the_turned_six_that_is_a_nine(digits_data_dir):
    split = "train@0-6/rot90flip+halves~6r180"
    sources, info = open_splits("by_class:builtin:digits", {"config.train_split": split},
                                digits_data_dir)
    train = sources[split]
    # 400 training 6s turned by 180 degrees are left out; the half composites stay.
    assert len(train) == 8 * 2800 - 400 + 4 * 2800 == info.split_sizes[split]
    copies = [train[k]["label"] for k in range(0, 8 * 2800 - 400, 7)]
    assert 6 * 8 + 2 not in copies and 6 * 8 + 6 in copies  # 6r180 gone, its mirror kept
    assert set(copies) == set(range(56)) - {50}
