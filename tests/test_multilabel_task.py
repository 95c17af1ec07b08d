"""The multilabel task's loss, eval outputs and summaries, run as jitted calls on synthetic
batches and checked against scikit-learn; its reports, thresholds and predictions on disk."""

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
)

from vision_jax.data import transforms
from vision_jax.losses.multilabel import sigmoid_bce
from vision_jax.tasks.multilabel import MultilabelTask, load_thresholds

NAMES = ["circle", "square", "triangle"]


def _data(seed: int, n: int = 100, labels: int = 3):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, labels)) < 0.45).astype(np.float32)
    logits = (rng.normal(size=(n, labels)) * 1.5 + 2.0 * (y - 0.5)).astype(np.float32)
    return logits, y


def _evaluate(task, logits, labels, batch=32):
    step = jax.jit(task.eval_outputs)
    accumulator = task.new_accumulator()
    for start in range(0, len(logits), batch):
        x, y = logits[start:start + batch], labels[start:start + batch]
        pad = batch - len(x)
        batch_dict = {"labels": np.concatenate([y, np.ones((pad, y.shape[1]), np.float32)]),
                      "mask": np.r_[np.ones(len(x)), np.zeros(pad)].astype(np.float32)}
        accumulator.add(step(np.concatenate([x, np.full((pad, y.shape[1]), -3.0, np.float32)]),
                             batch_dict))
    return accumulator


def test_loss_is_the_mean_bce_and_weights_positives():
    logits, labels = _data(0, n=16)
    weights = [1.0, 4.0, 0.5]
    for pos_weight in (None, weights):
        task = MultilabelTask(3, NAMES, pos_weight=pos_weight)
        loss, sums = jax.jit(task.loss)(logits, {"labels": labels})
        expected = sigmoid_bce(logits, labels, None if pos_weight is None else np.asarray(weights))
        assert float(loss) == pytest.approx(float(np.mean(expected)), rel=1e-6)
        assert float(sums["count"]) == 16
        summary = task.summarize(jax.device_get(sums))
        predicted = (logits >= 0).astype(int)
        assert summary["subset_accuracy"] == pytest.approx(accuracy_score(labels, predicted))
        assert summary["hamming_loss"] == pytest.approx(hamming_loss(labels, predicted))
    grads = jax.grad(lambda x: task.loss(x, {"labels": labels})[0])(logits)
    assert np.all(np.isfinite(grads)) and np.any(grads != 0)


def test_eval_summary_equals_scikit_learn_over_padded_batches():
    logits, labels = _data(1)
    task = MultilabelTask(3, NAMES, thresholds=[0.5, 0.4, 0.6])
    summary = task.summarize(_evaluate(task, logits, labels))
    predicted = (np.asarray(jax.nn.sigmoid(logits)) >= np.float32([0.5, 0.4, 0.6])).astype(int)
    assert summary["map"] == pytest.approx(average_precision_score(labels, logits), rel=1e-12)
    assert summary["subset_accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert summary["hamming_loss"] == pytest.approx(hamming_loss(labels, predicted))
    per_label_f1 = f1_score(labels, predicted, average=None)
    for name, value in zip(NAMES, per_label_f1, strict=True):
        assert summary[f"f1/{name}"] == pytest.approx(value)
    ap = average_precision_score(labels, logits, average=None)
    assert [summary[f"ap/{n}"] for n in NAMES] == pytest.approx(list(ap))
    assert summary["loss"] == pytest.approx(float(np.mean(sigmoid_bce(logits, labels))), rel=1e-5)


def test_chosen_thresholds_do_at_least_as_well_and_are_saved(tmp_path):
    logits, labels = _data(2)
    task = MultilabelTask(3, NAMES, choose_thresholds=True)
    accumulator = _evaluate(task, logits, labels)
    summary = task.summarize(accumulator)
    for name in NAMES:
        assert summary[f"chosen_f1/{name}"] >= summary[f"f1/{name}"]
        assert 0 < summary[f"threshold/{name}"] < 1
    assert summary["chosen_macro_f1"] > summary["macro_f1"]  # random data: 0.5 is not best

    report = task.write_report(accumulator, str(tmp_path), prefix="eval")
    saved = json.loads((tmp_path / "eval_multilabel_report.json").read_text())
    assert saved == json.loads(json.dumps(report))
    assert saved["mAP"] == pytest.approx(summary["map"])
    for name in NAMES:
        assert saved[name]["threshold"] == pytest.approx(summary[f"threshold/{name}"])
        assert saved[name]["f1-score"] == pytest.approx(summary[f"chosen_f1/{name}"])
    text = (tmp_path / "eval_multilabel_report.txt").read_text()
    assert "triangle" in text and "mAP" in text
    assert (tmp_path / "eval_label_metrics.png").stat().st_size > 5000
    thresholds = load_thresholds(str(tmp_path / "eval_thresholds.json"), NAMES)
    assert thresholds.tolist() == pytest.approx([summary[f"threshold/{n}"] for n in NAMES])
    with pytest.raises(ValueError, match=r"no threshold for labels \['dog'\]"):
        load_thresholds(str(tmp_path / "eval_thresholds.json"), ["dog"])


def test_one_label_accuracy_is_the_binary_accuracy_at_one_half():
    logits, labels = _data(3, labels=1)
    task = MultilabelTask(1, ["cat"])
    summary = task.summarize(_evaluate(task, logits, labels))
    assert summary["accuracy"] == pytest.approx(accuracy_score(labels[:, 0], logits[:, 0] >= 0))
    assert summary["accuracy"] == summary["subset_accuracy"]


def test_predictions_list_probabilities_and_labels_above_threshold(tmp_path):
    task = MultilabelTask(3, NAMES, thresholds=[0.5, 0.9, 0.2])
    logits = np.float32([[2.0, 1.0, -1.0], [-2.0, 3.0, -2.0]])
    results = task.write_predictions(None, logits, ["a.png", "b.png"], str(tmp_path))
    assert results[0]["labels"] == ["circle", "triangle"]  # sigmoid(1) = 0.73 < 0.9
    assert results[1]["labels"] == ["square"]
    assert results[0]["probabilities"]["circle"] == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert json.loads((tmp_path / "predictions.json").read_text()) == results


def test_example_spec_stacks_multi_hot_batches():
    # Through the shared host path (`transforms.stack`), as the pipeline batches them.
    spec = MultilabelTask(3).example_spec()
    assert spec.keys == {"labels"}
    records = [{"image": np.zeros((4, 4, 3), np.uint8), "labels": np.uint8([1, 0, 1]),
                "extra": 1}] * 2
    batch = transforms.stack([spec.select(r) for r in records])
    assert batch["labels"].dtype == np.float32 and batch["labels"].shape == (2, 3)
    assert batch["image"].shape == (2, 4, 4, 3)
    # Records that list class ids (TFDS Sequence(ClassLabel)) become multi-hot.
    spec = MultilabelTask(3, labels_as_ids=True).example_spec()
    records = [{"image": np.zeros((4, 4, 3), np.uint8), "labels": [2]},
               {"image": np.zeros((4, 4, 3), np.uint8), "labels": [0, 1]}]
    batch = transforms.stack([spec.select(r) for r in records])
    assert batch["labels"].tolist() == [[0, 0, 1], [1, 1, 0]]


@pytest.mark.parametrize("kwargs,message", [
    ({"label_names": ["a"]}, "label_names has 1 names for 3 labels"),
    ({"pos_weight": [1.0, 2.0]}, "pos_weight must give 3 weights"),
    ({"thresholds": [0.5, 0.5]}, "one value or 3")])
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MultilabelTask(3, **kwargs)
