"""Confusion matrix (accumulated in JAX inside eval steps) and a classification report.

Convention, as in scikit-learn: ``conf[i, j]`` counts examples whose true class is ``i``
and whose predicted class is ``j`` (rows are labels, columns are predictions).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np


def confusion_matrix_update(
    conf: jax.Array,
    labels: jax.Array,
    preds: jax.Array,
    num_classes: int,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Returns ``conf`` plus the counts of (label, prediction) pairs in this batch.

    Jit-able with static shapes, so it can run inside a sharded eval step: the sum over
    a globally sharded batch is the sum over every device.

    Args:
      conf: (num_classes, num_classes) integer counts so far (e.g. ``jnp.zeros(..., int32)``).
      labels: integer true classes, any shape.
      preds: integer predicted classes, same shape as ``labels``.
      num_classes: number of classes (static).
      mask: optional, same shape; entries where it is false/0 are not counted (padding
        examples, ignored pixels). Labels or predictions outside ``[0, num_classes)``
        (e.g. an ignore label of 255) are never counted either.
    """
    labels, preds = jnp.asarray(labels), jnp.asarray(preds)
    if conf.shape != (num_classes, num_classes):
        raise ValueError(
            f"conf must be ({num_classes}, {num_classes}) for num_classes={num_classes}, "
            f"got {conf.shape}."
        )
    if labels.shape != preds.shape:
        raise ValueError(f"labels {labels.shape} and preds {preds.shape} must have one shape.")
    for name, value in (("labels", labels), ("preds", preds)):
        if not jnp.issubdtype(value.dtype, jnp.integer):
            raise ValueError(
                f"{name} must be integer class ids, got {value.dtype}; take argmax of logits first."
            )
    valid = (labels >= 0) & (labels < num_classes) & (preds >= 0) & (preds < num_classes)
    if mask is not None:
        mask = jnp.asarray(mask)
        if mask.shape != labels.shape:
            raise ValueError(f"mask must have the labels' shape {labels.shape}, got {mask.shape}.")
        valid &= mask.astype(bool)
    # One flat scatter-add in integers: exact at any count (a one-hot matmul in float32
    # would lose exactness past 2**24 per cell) and O(batch) memory for segmentation maps.
    cell = jnp.where(valid, labels * num_classes + preds, 0).reshape(-1)
    counts = jnp.zeros((num_classes * num_classes,), conf.dtype)
    counts = counts.at[cell].add(valid.reshape(-1).astype(conf.dtype))
    return conf + counts.reshape(num_classes, num_classes)


def confusion_matrix(
    labels: jax.Array, preds: jax.Array, num_classes: int, mask: jax.Array | None = None
) -> jax.Array:
    """Confusion matrix of one batch, int32 (num_classes, num_classes)."""
    zeros = jnp.zeros((num_classes, num_classes), jnp.int32)
    return confusion_matrix_update(zeros, labels, preds, num_classes, mask)


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator with 0 where the denominator is 0 (zero_division=0)."""
    numerator = np.asarray(numerator, np.float64)
    denominator = np.asarray(denominator, np.float64)
    out = np.zeros(np.broadcast(numerator, denominator).shape)
    np.divide(numerator, denominator, out=out, where=denominator != 0)
    return out


def validate_confusion_matrix(conf: np.ndarray) -> np.ndarray:
    """``conf`` as an int64 NumPy (K, K) array, or a clear error."""
    conf = np.asarray(conf)
    if conf.ndim != 2 or conf.shape[0] != conf.shape[1]:
        raise ValueError(f"conf must be a square (K, K) confusion matrix, got {conf.shape}.")
    return conf.astype(np.int64)


def classification_report(conf: np.ndarray, class_names: Sequence[str]) -> dict:
    """Per-class precision, recall, F1 and support from a confusion matrix.

    Same layout and definitions as ``sklearn.metrics.classification_report(...,
    output_dict=True, zero_division=0)`` with every class listed: one entry per class
    name, then ``"accuracy"``, ``"macro avg"`` (unweighted mean over all classes) and
    ``"weighted avg"`` (weighted by support). Undefined ratios are 0.
    """
    conf = validate_confusion_matrix(conf)
    if len(class_names) != conf.shape[0]:
        raise ValueError(
            f"class_names has {len(class_names)} names but conf is {conf.shape}; "
            "give one name per class."
        )
    true_positive = np.diag(conf)
    support = conf.sum(axis=1)
    predicted = conf.sum(axis=0)
    precision = _ratio(true_positive, predicted)
    recall = _ratio(true_positive, support)
    # F1 from counts (not from the rounded ratios), as scikit-learn computes it.
    f1 = _ratio(2 * true_positive, support + predicted)
    total = int(support.sum())

    report: dict = {}
    for index, name in enumerate(class_names):
        report[str(name)] = {
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1-score": float(f1[index]),
            "support": int(support[index]),
        }
    report["accuracy"] = float(_ratio(true_positive.sum(), total))
    weights = _ratio(support, total)
    for key, combine in (("macro avg", np.mean), ("weighted avg", lambda v: np.sum(v * weights))):
        report[key] = {
            "precision": float(combine(precision)),
            "recall": float(combine(recall)),
            "f1-score": float(combine(f1)),
            "support": total,
        }
    return report


def format_report(report: dict, digits: int = 2) -> str:
    """Formats ``classification_report`` output as the same text table scikit-learn prints."""
    headers = ("precision", "recall", "f1-score", "support")
    summary_keys = ("accuracy", "macro avg", "weighted avg")
    class_names = [key for key in report if key not in summary_keys]
    width = max([len(name) for name in class_names] + [len("weighted avg"), digits])

    def row(name: str, entry: dict) -> str:
        values = "".join(f" {entry[key]:>9.{digits}f}" for key in headers[:3])
        return f"{name:>{width}} {values} {entry['support']:>9}\n"

    text = f"{'':>{width}} " + "".join(f" {h:>9}" for h in headers) + "\n\n"
    text += "".join(row(name, report[name]) for name in class_names) + "\n"
    if "accuracy" in report:
        total = report["macro avg"]["support"]
        blank = f" {'':>9}" * 2
        text += f"{'accuracy':>{width}} {blank} {report['accuracy']:>9.{digits}f} {total:>9}\n"
    for name in summary_keys[1:]:
        if name in report:
            text += row(name, report[name])
    return text
