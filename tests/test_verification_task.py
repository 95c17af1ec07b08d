"""The verification task's loss, eval outputs and summary, run as jitted calls on synthetic
embeddings; the summary's AUC is scikit-learn's over the same pairs."""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from vision_jax.losses.metric_learning import (
    contrastive_loss,
    supervised_contrastive_loss,
    triplet_semihard_loss,
)
from vision_jax.metrics import verification as vm
from vision_jax.tasks.verification import VerificationTask, l2_normalize


def _clusters(seed: int, identities=(7, 8, 9), per_identity: int = 20, noise: float = 0.8):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(identities), 8)) * 2
    labels = np.repeat(np.asarray(identities), per_identity).astype(np.int32)
    outputs = centres[np.searchsorted(identities, labels)] + noise * rng.normal(
        size=(len(labels), 8))
    order = rng.permutation(len(labels))
    return outputs[order].astype(np.float32) * 3.0, labels[order]  # not unit length


@pytest.mark.parametrize("loss,reference", [("triplet", triplet_semihard_loss),
                                            ("contrastive", contrastive_loss),
                                            ("supcon", supervised_contrastive_loss)])
def test_loss_is_the_metric_loss_of_the_normalised_outputs(loss, reference):
    outputs, labels = _clusters(0)
    # 0.3 is the margin of the margin losses and the temperature of supcon.
    task = VerificationTask(loss=loss, margin=0.3, temperature=0.3)
    value, sums = jax.jit(task.loss)(outputs, {"label": labels})
    expected = reference(l2_normalize(outputs), labels, 0.3)
    assert float(value) == pytest.approx(float(expected), rel=1e-6)
    assert float(sums["loss"]) == pytest.approx(float(expected) * len(labels), rel=1e-6)
    assert task.summarize(jax.device_get(sums))["loss"] == pytest.approx(float(expected), 1e-6)
    grads = jax.grad(lambda x: task.loss(x, {"label": labels})[0])(outputs)
    assert np.all(np.isfinite(grads)) and np.any(grads != 0)


def test_eval_summary_over_padded_batches(tmp_path):
    outputs, labels = _clusters(1)
    task = VerificationTask()
    step = jax.jit(task.eval_outputs)
    accumulator = task.new_accumulator()
    for start in range(0, len(labels), 16):
        x, y = outputs[start:start + 16], labels[start:start + 16]
        pad = 16 - len(x)
        accumulator.add(step(np.concatenate([x, np.ones((pad, 8), np.float32)]),
                             {"label": np.r_[y, np.full(pad, 9)].astype(np.int32),
                              "mask": np.r_[np.ones(len(x)), np.zeros(pad)].astype(np.float32)}))
    summary = task.summarize(accumulator)
    unit = outputs / np.linalg.norm(outputs, axis=-1, keepdims=True)
    pairs, same = vm.balanced_pairs(labels)
    scores = np.sum(unit[pairs[:, 0]] * unit[pairs[:, 1]], -1)
    assert summary["pair_auc"] == pytest.approx(roc_auc_score(same, scores), rel=1e-6)
    assert summary["one_shot_references"] == 3 and summary["one_shot_queries"] == 57
    assert 0.5 < summary["pair_auc"] <= 1.0 and 0 <= summary["one_shot_accuracy"] <= 1
    for key in ("pair_accuracy", "pair_threshold", "pair_validation_accuracy", "loss"):
        assert np.isfinite(summary[key])

    report = task.write_report(accumulator, str(tmp_path))
    assert report["identities"] == [7, 8, 9] and report["examples"] == 60
    saved = json.loads((tmp_path / "eval_verification_report.json").read_text())
    assert saved["metrics"]["pair_auc"] == pytest.approx(summary["pair_auc"])
    assert "pair_threshold" in (tmp_path / "eval_verification_report.txt").read_text()


def test_predictions_write_unit_embeddings_and_nearest_images(tmp_path):
    outputs = np.float32([[3, 0], [0, 2], [2, 0.1]])
    results = VerificationTask().write_predictions(None, outputs, ["a", "b", "c"], str(tmp_path))
    assert [r["nearest"] for r in results] == ["c", "c", "a"]
    saved = np.load(tmp_path / "embeddings.npz")
    np.testing.assert_allclose(np.linalg.norm(saved["embeddings"], axis=-1), 1.0, rtol=1e-6)
    assert saved["names"].tolist() == ["a", "b", "c"]


def test_an_unknown_loss_is_a_clear_error():
    with pytest.raises(ValueError, match=r"loss='arcface' is not one of \['contrastive', "):
        VerificationTask(loss="arcface")


def test_the_batch_axes_to_gather_are_found_only_inside_shard_map():
    from jax.sharding import Mesh, PartitionSpec

    from vision_jax.tasks.verification import bound_batch_axes

    seen = []

    def probe(x):
        seen.append(bound_batch_axes())
        return x

    jax.jit(probe)(np.zeros(2, np.float32))
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("data",))
    jax.jit(jax.shard_map(probe, mesh=mesh, in_specs=PartitionSpec("data"),
                          out_specs=PartitionSpec("data")))(np.zeros(2, np.float32))
    assert seen == [(), ("data",)]
