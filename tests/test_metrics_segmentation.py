"""Segmentation metrics from an accumulated confusion matrix, against scikit-learn."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn import metrics as skm

from vision_jax.metrics.segmentation import (
    mean_iou,
    per_class_iou,
    pixel_accuracy,
    segmentation_confusion_update,
    segmentation_metrics,
)

NUM_CLASSES = 5
IGNORE = 255


def _random_maps(seed):
    """Two batches of 2x12x12 maps; class 3 appears in neither labels nor predictions,
    class 4 only in predictions; ~10% of label pixels carry the ignore label."""
    rng = np.random.default_rng(seed)
    labels = rng.choice([0, 1, 2], (2, 2, 12, 12))
    preds = np.where(rng.random(labels.shape) < 0.5, labels, rng.choice([0, 1, 2, 4], labels.shape))
    labels = np.where(rng.random(labels.shape) < 0.1, IGNORE, labels)
    return labels, preds


def _accumulate(labels, preds):
    update = jax.jit(
        functools.partial(
            segmentation_confusion_update, num_classes=NUM_CLASSES, ignore_label=IGNORE
        )
    )
    conf = jnp.zeros((NUM_CLASSES, NUM_CLASSES), jnp.int32)
    for batch_labels, batch_preds in zip(labels, preds, strict=True):
        conf = update(conf, batch_labels, batch_preds)
    return np.asarray(conf)


@pytest.mark.parametrize("seed", [0, 1])
def test_iou_matches_sklearn_jaccard_on_flattened_pixels(seed):
    labels, preds = _random_maps(seed)
    conf = _accumulate(labels, preds)
    counted = labels != IGNORE
    y_true, y_pred = labels[counted], preds[counted]

    ious = per_class_iou(conf)
    present = sorted(set(y_true) | set(y_pred))
    assert present == [0, 1, 2, 4]
    np.testing.assert_allclose(ious[present], skm.jaccard_score(y_true, y_pred, average=None))
    assert np.isnan(ious[3])
    assert mean_iou(conf) == pytest.approx(skm.jaccard_score(y_true, y_pred, average="macro"))
    assert pixel_accuracy(conf) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert conf.sum() == counted.sum()

    summary = segmentation_metrics(conf)
    assert summary["miou"] == mean_iou(conf)
    recalls = skm.recall_score(y_true, y_pred, labels=sorted(set(y_true)), average=None)
    assert summary["mean_accuracy"] == pytest.approx(recalls.mean())


def test_empty_confusion_matrix_is_zero_not_nan():
    conf = np.zeros((3, 3), int)
    assert pixel_accuracy(conf) == 0.0
    assert mean_iou(conf) == 0.0


def test_non_square_matrix_is_rejected():
    with pytest.raises(ValueError, match="square"):
        mean_iou(np.zeros((3, 4)))
