"""Semantic-segmentation metrics from a confusion matrix.

Accumulate ``conf`` with ``segmentation_confusion_update`` inside the eval step (summed
over batches and, through the sharded batch, over devices), then read the metrics from
it on the host with ``segmentation_metrics``. Pixels carrying the ignore label are never
counted, so they count neither as right nor as wrong.

Mean IoU is the mean over the classes *present in the labels or the predictions*
(union > 0); a class absent from both has no defined IoU (NaN in ``per_class_iou``) and
is left out of the mean. This equals ``sklearn.metrics.jaccard_score(labels, preds,
average="macro")`` over the flattened non-ignored pixels, and is what most
segmentation benchmarks (e.g. the mmseg / torchmetrics defaults) report.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from vision_jax.metrics.classification import confusion_matrix_update, validate_confusion_matrix


def segmentation_confusion_update(
    conf: jax.Array,
    labels: jax.Array,
    preds: jax.Array,
    num_classes: int,
    ignore_label: int | None = 255,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Adds a batch of label maps (B, H, W) and predicted maps to ``conf`` (jit-able).

    Pixels equal to ``ignore_label`` (or outside ``[0, num_classes)``, or where ``mask``
    is false) are not counted.
    """
    labels = jnp.asarray(labels)
    keep = jnp.ones(labels.shape, bool) if mask is None else jnp.asarray(mask).astype(bool)
    if ignore_label is not None:
        keep &= labels != ignore_label
    return confusion_matrix_update(conf, labels, preds, num_classes, mask=keep)


def pixel_accuracy(conf: np.ndarray) -> float:
    """Fraction of counted pixels predicted correctly (0 when nothing was counted)."""
    conf = validate_confusion_matrix(conf)
    total = conf.sum()
    return float(np.trace(conf) / total) if total else 0.0


def per_class_iou(conf: np.ndarray) -> np.ndarray:
    """IoU of each class, ``tp / (tp + fp + fn)``; NaN for a class in neither labels nor preds."""
    conf = validate_confusion_matrix(conf)
    true_positive = np.diag(conf).astype(np.float64)
    union = conf.sum(axis=0) + conf.sum(axis=1) - true_positive
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, true_positive / union, np.nan)


def mean_iou(conf: np.ndarray) -> float:
    """Mean IoU over classes present in labels or predictions (0 when none is)."""
    ious = per_class_iou(conf)
    present = ~np.isnan(ious)
    return float(ious[present].mean()) if present.any() else 0.0


def per_class_accuracy(conf: np.ndarray) -> np.ndarray:
    """Recall of each class, ``tp / (tp + fn)``; NaN for a class absent from the labels."""
    conf = validate_confusion_matrix(conf)
    support = conf.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(conf) / support, np.nan)


def segmentation_metrics(conf: np.ndarray) -> dict:
    """All of the above as one dict: ``pixel_accuracy``, ``mean_accuracy`` (over classes
    present in the labels), ``miou``, ``per_class_iou`` (array, NaN where undefined)."""
    class_accuracy = per_class_accuracy(conf)
    present = ~np.isnan(class_accuracy)
    return {
        "pixel_accuracy": pixel_accuracy(conf),
        "mean_accuracy": float(class_accuracy[present].mean()) if present.any() else 0.0,
        "miou": mean_iou(conf),
        "per_class_iou": per_class_iou(conf),
    }
