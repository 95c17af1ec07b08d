"""`builtin:shapes_classification`: one whole shape per image, its class and its exact box."""

from __future__ import annotations

import numpy as np
import pytest

from vision_jax.data.builtin import shapes_classification as dataset
from vision_jax.data.registry import BUILTINS


def test_registered_as_a_builtin():
    assert BUILTINS.get("shapes_classification") is dataset.ShapesClassification


def test_examples_are_reproducible_and_in_frame():
    first = dataset.generate_example("train", 7)
    again = dataset.generate_example("train", 7)
    np.testing.assert_array_equal(first["image"], again["image"])
    assert first["image"].shape == (48, 48, 3) and first["image"].dtype == np.uint8
    margin = 2 / 48  # the shape keeps two pixels from every side
    labels = []
    for index in range(60):
        example = dataset.generate_example("test", index)
        ymin, xmin, ymax, xmax = example["bbox"]
        assert margin - 1e-6 <= ymin < ymax <= 1 - margin + 1e-6
        assert margin - 1e-6 <= xmin < xmax <= 1 - margin + 1e-6
        labels.append(example["label"])
    assert set(labels) == {0, 1, 2}


def test_box_is_tight_around_the_shape_colour():
    example = dataset.generate_example("train", 3)
    ymin, xmin, ymax, xmax = np.round(example["bbox"] * 48).astype(int)
    image = example["image"].astype(int)
    inside = image[ymin:ymax, xmin:xmax]
    # The box's centre pixel lies in every kind of shape (convex, centred): its colour is the
    # shape's, and a tight box touches the shape on all four edges.
    colour = image[(ymin + ymax) // 2, (xmin + xmax) // 2]
    same = np.all(image == colour, axis=-1)
    assert same[ymin:ymax, xmin:xmax].sum() >= 0.3 * inside.shape[0] * inside.shape[1]
    for edge in (same[ymin], same[ymax - 1], same[:, xmin], same[:, xmax - 1]):
        assert edge.any()


def test_unknown_split_is_an_error():
    with pytest.raises(ValueError, match="split"):
        dataset.generate_example("validation", 0)
