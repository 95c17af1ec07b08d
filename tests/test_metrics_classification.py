"""Confusion matrix and classification report against scikit-learn."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from vision_jax.metrics.classification import (
    classification_report,
    confusion_matrix,
    confusion_matrix_update,
    format_report,
)

NUM_CLASSES = 6
NAMES = ["cat", "dog", "bird", "a_long_class_name_here", "fish", "never_seen"]


def _random_batches(seed, num_batches=3, batch=40):
    """Labels never contain class 5; predictions never contain class 4."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, NUM_CLASSES - 1, (num_batches, batch))
    # Mostly right, sometimes a random guess, never class 4.
    guesses = rng.choice([0, 1, 2, 3, 5], (num_batches, batch))
    preds = np.where(rng.random((num_batches, batch)) < 0.6, labels, guesses)
    preds = np.where(preds == 4, 0, preds)
    mask = rng.random((num_batches, batch)) < 0.8
    return labels, preds, mask


def _accumulate(labels, preds, mask):
    update = jax.jit(functools.partial(confusion_matrix_update, num_classes=NUM_CLASSES))
    conf = jnp.zeros((NUM_CLASSES, NUM_CLASSES), jnp.int32)
    for batch_labels, batch_preds, batch_mask in zip(labels, preds, mask, strict=True):
        conf = update(conf, batch_labels, batch_preds, mask=batch_mask)
    return conf


def test_confusion_matrix_accumulates_like_sklearn_and_respects_mask():
    labels, preds, mask = _random_batches(0)
    conf = _accumulate(labels, preds, mask)
    chex.assert_type(conf, jnp.int32)
    want = skm.confusion_matrix(labels[mask], preds[mask], labels=range(NUM_CLASSES))
    np.testing.assert_array_equal(np.asarray(conf), want)
    # Without a mask every entry counts.
    unmasked = confusion_matrix(labels.reshape(-1), preds.reshape(-1), NUM_CLASSES)
    want_all = skm.confusion_matrix(labels.reshape(-1), preds.reshape(-1), labels=range(6))
    np.testing.assert_array_equal(np.asarray(unmasked), want_all)
    assert int(conf.sum()) == int(mask.sum()) < labels.size


def test_out_of_range_labels_are_not_counted():
    labels = jnp.array([0, 1, 255, -1, 2])
    preds = jnp.array([0, 2, 1, 1, 7])
    conf = confusion_matrix(labels, preds, num_classes=3)
    want = skm.confusion_matrix([0, 1], [0, 2], labels=range(3))
    np.testing.assert_array_equal(np.asarray(conf), want)


@pytest.mark.parametrize("seed", [1, 2])
def test_classification_report_equals_sklearn(seed):
    labels, preds, mask = _random_batches(seed)
    conf = np.asarray(_accumulate(labels, preds, mask))
    ours = classification_report(conf, NAMES)
    want = skm.classification_report(
        labels[mask],
        preds[mask],
        labels=range(NUM_CLASSES),
        target_names=NAMES,
        output_dict=True,
        zero_division=0,
    )
    assert list(ours) == list(want)
    for key, value in want.items():
        if isinstance(value, dict):
            assert list(ours[key]) == list(value)
            for field, number in value.items():
                assert ours[key][field] == pytest.approx(number, abs=1e-12), (key, field)
        else:
            assert ours[key] == pytest.approx(value, abs=1e-12), key
    # Class 4 is never predicted and class 5 never occurs: both have zero scores.
    assert ours["fish"]["precision"] == 0.0 and ours["fish"]["support"] > 0
    assert ours["never_seen"]["support"] == 0


def test_format_report_equals_sklearn_text():
    labels, preds, mask = _random_batches(3)
    conf = np.asarray(_accumulate(labels, preds, mask))
    for digits in (2, 4):
        want = skm.classification_report(
            labels[mask],
            preds[mask],
            labels=range(NUM_CLASSES),
            target_names=NAMES,
            digits=digits,
            zero_division=0,
        )
        assert format_report(classification_report(conf, NAMES), digits=digits) == want


def test_bad_inputs_raise_clear_errors():
    conf = jnp.zeros((3, 3), jnp.int32)
    with pytest.raises(ValueError, match="conf must be"):
        confusion_matrix_update(conf, jnp.array([0]), jnp.array([0]), num_classes=4)
    with pytest.raises(ValueError, match="preds must be integer"):
        confusion_matrix_update(conf, jnp.array([0]), jnp.array([0.3]), num_classes=3)
    with pytest.raises(ValueError, match="mask"):
        confusion_matrix_update(
            conf, jnp.array([0, 1]), jnp.array([0, 1]), 3, mask=jnp.array([True])
        )
    with pytest.raises(ValueError, match="class_names"):
        classification_report(np.eye(3, dtype=int), ["a", "b"])
