"""Segmentation task: eval metrics against scikit-learn, the loss against a NumPy reference,
and the config checks of `config.segmentation`."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from sklearn.metrics import accuracy_score, jaccard_score

from vision_jax.tasks.base import SumAccumulator
from vision_jax.tasks.segmentation import SegmentationTask
from vision_jax.training.defaults import default_config
from vision_jax.training.run_config import parse_config

IGNORE = 255


def _random_batch(rng, batch, size, num_classes, ignore_fraction=0.2, padded=1):
    labels = rng.integers(0, num_classes, (batch, size, size)).astype(np.int32)
    labels[rng.random(labels.shape) < ignore_fraction] = IGNORE
    logits = rng.normal(size=(batch, size, size, num_classes)).astype(np.float32)
    mask = np.ones(batch, np.float32)
    mask[batch - padded:] = 0.0  # the last examples are eval padding
    return logits, {"segmentation": labels, "mask": mask}


def test_eval_metrics_match_sklearn_with_ignore_label_and_padding():
    rng = np.random.default_rng(0)
    num_classes = 4
    task = SegmentationTask(num_classes, ["a", "b", "c", "d"], ignore_label=IGNORE)
    eval_outputs = jax.jit(task.eval_outputs)
    accumulator = task.new_accumulator()
    kept_labels, kept_preds = [], []
    for padded in (1, 2):
        logits, batch = _random_batch(rng, 5, 6, num_classes, padded=padded)
        accumulator.add(eval_outputs(logits, batch))
        real = batch["mask"] > 0
        labels, preds = batch["segmentation"][real], logits[real].argmax(-1)
        keep = labels != IGNORE
        kept_labels.append(labels[keep])
        kept_preds.append(preds[keep])
    y_true, y_pred = np.concatenate(kept_labels), np.concatenate(kept_preds)
    metrics = task.summarize(accumulator)
    np.testing.assert_allclose(metrics["miou"], jaccard_score(y_true, y_pred, average="macro"),
                               rtol=1e-6)
    per_class = jaccard_score(y_true, y_pred, average=None, labels=range(num_classes))
    for name, expected in zip("abcd", per_class, strict=True):
        np.testing.assert_allclose(metrics[f"iou/{name}"], expected, rtol=1e-6)
    np.testing.assert_allclose(metrics["pixel_accuracy"], accuracy_score(y_true, y_pred),
                               rtol=1e-6)


def test_eval_loss_excludes_padding_and_ignored_pixels():
    rng = np.random.default_rng(1)
    task = SegmentationTask(3, ignore_label=IGNORE)
    logits, batch = _random_batch(rng, 4, 5, 3, padded=2)
    sums = jax.device_get(jax.jit(task.eval_outputs)(logits, batch))
    real = batch["mask"] > 0
    labels, kept_logits = batch["segmentation"][real], logits[real]
    keep = labels != IGNORE
    expected = _np_cross_entropy(kept_logits[keep], labels[keep]).mean()
    np.testing.assert_allclose(task.summarize(sums)["loss"], expected, rtol=1e-5)


def _np_log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def _np_cross_entropy(logits, labels):
    return -np.take_along_axis(_np_log_softmax(logits), labels[..., None], -1)[..., 0]


def _np_objective(logits, labels, num_classes, weights, dice_weight):
    """Weighted mean CE over non-ignored pixels + dice_weight * (1 - mean soft Dice)."""
    flat_logits = logits.reshape(-1, num_classes).astype(np.float64)
    flat_labels = labels.reshape(-1)
    keep = flat_labels != IGNORE
    flat_logits, flat_labels = flat_logits[keep], flat_labels[keep]
    w = np.asarray(weights, np.float64)[flat_labels]
    loss = (w * _np_cross_entropy(flat_logits, flat_labels)).sum() / w.sum()
    if dice_weight:
        probs = np.exp(_np_log_softmax(flat_logits))
        onehot = np.eye(num_classes)[flat_labels]
        dice = (2 * (probs * onehot).sum(0) + 1) / (probs.sum(0) + onehot.sum(0) + 1)
        loss += dice_weight * (1 - dice.mean())
    return loss


@pytest.mark.parametrize(("weights", "dice_weight"), [
    (None, 0.0), ([0.5, 2.0, 1.0], 0.0), (None, 0.7), ([1.0, 0.0, 3.0], 1.5)])
def test_train_loss_matches_numpy(weights, dice_weight):
    rng = np.random.default_rng(2)
    task = SegmentationTask(3, ignore_label=IGNORE, class_weights=weights,
                            dice_weight=dice_weight)
    logits, batch = _random_batch(rng, 3, 7, 3, padded=0)
    loss, sums = jax.jit(task.loss)(logits, batch)
    expected = _np_objective(logits, batch["segmentation"], 3, weights or [1.0] * 3, dice_weight)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    labels, preds = batch["segmentation"], logits.argmax(-1)
    keep = labels != IGNORE
    metrics = task.summarize(jax.device_get(sums))
    np.testing.assert_allclose(metrics["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(metrics["pixel_accuracy"], (preds == labels)[keep].mean(),
                               rtol=1e-6)


def test_loss_gradient_ignores_ignored_pixels():
    rng = np.random.default_rng(3)
    task = SegmentationTask(3, ignore_label=IGNORE, dice_weight=1.0)
    logits, batch = _random_batch(rng, 2, 4, 3, padded=0)
    grads = jax.grad(lambda x: task.loss(x, batch)[0])(logits)
    ignored = batch["segmentation"] == IGNORE
    assert ignored.any()
    np.testing.assert_array_equal(np.asarray(grads)[ignored], 0.0)


def test_sum_accumulator_totals_equal_one_big_batch():
    rng = np.random.default_rng(4)
    task = SegmentationTask(3, ignore_label=IGNORE)
    logits, batch = _random_batch(rng, 6, 4, 3, padded=0)
    whole = task.summarize(jax.device_get(task.eval_outputs(logits, batch)))
    accumulator = SumAccumulator()
    for part in (slice(0, 2), slice(2, 6)):
        accumulator.add(task.eval_outputs(logits[part], {k: v[part] for k, v in batch.items()}))
    parts = task.summarize(accumulator)
    for key, value in whole.items():
        np.testing.assert_allclose(parts[key], value, rtol=1e-5)


def _config(**segmentation):
    config = default_config()
    config.task, config.num_classes = "segmentation", 3
    config.model_name, config.image_size = "unet", 32
    config.dataset = "builtin:shapes_segmentation"
    for key, value in segmentation.items():
        config.segmentation[key] = value
    return config


@pytest.mark.parametrize(("fields", "message"), [
    ({"ignore_lable": 255}, r"config\.segmentation\.ignore_lable.*did you mean .*ignore_label"),
    ({"ignore_label": 2}, r"config\.segmentation\.ignore_label=2"),
    ({"class_weights": (1.0, 2.0)}, r"config\.segmentation\.class_weights"),
    ({"dice_weight": -1.0}, r"config\.segmentation\.dice_weight"),
    ({"class_names": ("a", "b")}, r"config\.segmentation\.class_names"),
    ({"unmapped": "drop"}, r"config\.segmentation\.unmapped"),
    ({"mask_mapping": {1: 7}}, r"config\.segmentation\.mask_mapping"),
])
def test_bad_segmentation_fields_are_named(fields, message):
    with pytest.raises(ValueError, match=message):
        parse_config(_config(**fields))


def test_rotation_is_accepted_and_good_config_passes():
    parse_config(_config(class_weights=(1.0, 1.0, 2.0), dice_weight=0.5,
                         mask_mapping={1: 0, 2: 1, 3: 255}))
    config = _config()
    config.augment.rotate_degrees = 10.0  # masks rotate with the image (nearest) on device
    parse_config(config)
