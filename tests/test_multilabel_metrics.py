"""The multi-label metrics equal scikit-learn's on random predictions, accumulated over
uneven, padded batches; thresholds chosen by best F1 are the best a brute force finds."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    f1_score,
    hamming_loss,
    precision_recall_fscore_support,
)

from vision_jax.metrics import multilabel as ml

NUM_LABELS = 5


def _random(seed: int, n: int = 300, ties: bool = False):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, NUM_LABELS)) < rng.uniform(0.1, 0.6, NUM_LABELS)).astype(np.uint8)
    logits = rng.normal(size=(n, NUM_LABELS)) + 1.5 * labels
    if ties:  # coarse scores: many examples share one, which AP must rank together
        logits = np.round(logits * 2) / 2
    return logits.astype(np.float32), labels


def _predicted(logits, thresholds):
    return (np.asarray(jax.nn.sigmoid(logits)) >= thresholds).astype(np.uint8)


def _accumulate(logits, labels, thresholds, batch=64):
    """Eval-step sums over uneven batches, the last one padded, plus the host collector."""
    step = jax.jit(ml.threshold_sums)
    totals, collector = None, ml.ScoreCollector()
    for start in range(0, len(logits), batch):
        x, y = logits[start:start + batch], labels[start:start + batch]
        pad = batch - len(x)
        mask = np.r_[np.ones(len(x)), np.zeros(pad)].astype(np.float32)
        # Padding rows carry junk that must not count.
        x = np.concatenate([x, np.full((pad, NUM_LABELS), 9.0, np.float32)])
        y = np.concatenate([y, np.zeros((pad, NUM_LABELS), np.uint8)])
        sums = step(x, y, thresholds, mask)
        totals = sums if totals is None else jax.tree.map(np.add, totals, sums)
        collector.add(x, y, mask)
    return jax.tree.map(np.asarray, totals), collector


@pytest.mark.parametrize("seed,ties", [(0, False), (1, True), (2, False)])
def test_metrics_equal_scikit_learn(seed, ties):
    logits, labels = _random(seed, ties=ties)
    thresholds = ml.probability_thresholds([0.3, 0.5, 0.5, 0.7, 0.6], NUM_LABELS)
    sums, collector = _accumulate(logits, labels, thresholds)
    got = ml.metrics_from_sums(sums)
    predicted = _predicted(logits, thresholds)
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, average=None, zero_division=0)
    np.testing.assert_allclose(got["precision"], precision, rtol=1e-12)
    np.testing.assert_allclose(got["recall"], recall, rtol=1e-12)
    np.testing.assert_allclose(got["f1"], f1, rtol=1e-12)
    np.testing.assert_array_equal(got["support"], support)
    assert got["hamming_loss"] == pytest.approx(hamming_loss(labels, predicted), rel=1e-12)
    assert got["subset_accuracy"] == pytest.approx(accuracy_score(labels, predicted), rel=1e-12)

    scores, collected = collector.arrays()
    np.testing.assert_array_equal(collected, labels)
    ap = ml.average_precision(scores, collected)
    np.testing.assert_allclose(ap, average_precision_score(labels, logits, average=None),
                               rtol=1e-12)
    assert ap.mean() == pytest.approx(average_precision_score(labels, logits, average="macro"),
                                      rel=1e-12)


def test_ap_of_a_label_without_positives_is_zero_as_in_scikit_learn():
    logits, labels = _random(3, n=40)
    labels[:, 2] = 0
    with pytest.warns(UserWarning):
        expected = average_precision_score(labels, logits, average=None)
    np.testing.assert_allclose(ml.average_precision(logits, labels), expected, rtol=1e-12)
    assert ml.average_precision(logits, labels)[2] == 0.0


def test_one_label_is_the_binary_accuracy_at_one_half():
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, (200, 1)).astype(np.uint8)
    logits = (rng.normal(size=(200, 1)) + labels).astype(np.float32)
    got = ml.metrics_from_sums(ml.host_threshold_sums(logits, labels, np.float32([0.5])))
    accuracy = accuracy_score(labels[:, 0], (logits[:, 0] >= 0).astype(int))
    assert got["subset_accuracy"] == pytest.approx(accuracy)
    assert got["hamming_loss"] == pytest.approx(1 - accuracy)


def test_best_f1_thresholds_beat_every_other_threshold():
    logits, labels = _random(5, n=120)
    chosen = ml.best_f1_thresholds(logits, labels)
    best = f1_score(labels, _predicted(logits, chosen), average=None, zero_division=0)
    for k in range(NUM_LABELS):
        candidates = np.asarray(jax.nn.sigmoid(np.unique(logits[:, k])))
        brute = max(f1_score(labels[:, k], (np.asarray(jax.nn.sigmoid(logits[:, k])) >= t),
                             zero_division=0) for t in candidates)
        assert best[k] == pytest.approx(brute, rel=1e-12)
    assert np.all((chosen > 0) & (chosen < 1))


def test_report_text_and_json():
    logits, labels = _random(6, n=80)
    names = ["bike", "person", "tree", "car", "dog"]
    report = ml.multilabel_report(logits, labels, names, thresholds=0.5)
    assert list(report)[:NUM_LABELS] == names
    assert report["mAP"] == pytest.approx(average_precision_score(labels, logits))
    micro = precision_recall_fscore_support(labels, _predicted(logits, 0.5), average="micro")
    assert report["micro avg"]["f1-score"] == pytest.approx(micro[2])
    json.dumps(report)  # plain types only
    text = ml.format_multilabel_report(report)
    assert text.splitlines()[2].split()[0] == "bike" and "mAP" in text


@pytest.mark.parametrize("thresholds,message", [
    ([0.5, 0.5], r"one value or 5"), (1.0, r"\(0, 1\)"), ([0.5, 0, 0.5, 0.5, 0.5], r"\(0, 1\)")])
def test_bad_thresholds_are_clear_errors(thresholds, message):
    with pytest.raises(ValueError, match=message):
        ml.probability_thresholds(thresholds, NUM_LABELS)
