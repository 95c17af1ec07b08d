"""The metric-learning losses against brute-force references, and semi-hard mining over the
whole global batch: the same loss on one device and on 8 simulated devices (jit with the batch
sharded over a mesh, and shard_map with the embeddings gathered), and the verification task's
loss and parameter gradient, run as the shard_map strategy runs it, equal to one device's."""

from __future__ import annotations

import json
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest
from train_cli import REPO, cpu_env

from vision_jax.losses.metric_learning import (
    contrastive_loss,
    pairwise_distances,
    supervised_contrastive_loss,
    triplet_semihard_loss,
)
from vision_jax.losses.multilabel import positive_weights, sigmoid_bce
from vision_jax.tasks.verification import VerificationTask


def _batch(seed: int, size: int = 32, dim: int = 8, identities: int = 5):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, identities, size).astype(np.int32)
    embeddings = rng.normal(size=(size, dim)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=-1, keepdims=True)
    return embeddings, labels


def _reference_triplet(x, labels, margin, mask):
    """FaceNet semi-hard mining written as loops over every anchor, positive and negative."""
    d = np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1), 0.0)).astype(np.float64)
    total, count = 0.0, 0
    for a in range(len(x)):
        negatives = [n for n in range(len(x)) if mask[n] and labels[n] != labels[a]]
        if not mask[a] or not negatives:
            continue
        for p in range(len(x)):
            if p == a or not mask[p] or labels[p] != labels[a]:
                continue
            farther = [d[a, n] for n in negatives if d[a, n] > d[a, p]]
            d_an = min(farther) if farther else max(d[a, n] for n in negatives)
            total += max(d[a, p] - d_an + margin, 0.0)
            count += 1
    return total / max(count, 1)


def _reference_contrastive(x, labels, margin, mask):
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1)).astype(np.float64)
    terms = [d[i, j] ** 2 if labels[i] == labels[j] else max(margin - d[i, j], 0.0) ** 2
             for i in range(len(x)) for j in range(len(x)) if i != j and mask[i] and mask[j]]
    return 0.5 * np.mean(terms)


def _reference_supcon(x, labels, temperature, mask):
    """Khosla et al.'s equation 2 as loops: for each anchor, the mean over its positives of
    -log(exp(s_ap / t) / sum over every other example a' of exp(s_aa' / t))."""
    s = (x @ x.T).astype(np.float64) / temperature
    per_anchor = []
    for a in range(len(x)):
        others = [j for j in range(len(x)) if j != a and mask[j]]
        positives = [p for p in others if labels[p] == labels[a]]
        if not mask[a] or not positives:
            continue
        log_norm = np.log(sum(np.exp(s[a, j]) for j in others))
        per_anchor.append(-np.mean([s[a, p] - log_norm for p in positives]))
    return np.mean(per_anchor)


@pytest.mark.parametrize("seed", [0, 1])
def test_triplet_semihard_equals_the_loop_reference(seed):
    x, labels = _batch(seed)
    mask = np.ones(len(x), np.float32)
    mask[-3:] = 0  # padding never mines nor counts
    for margin in (0.2, 1.0):
        got = float(jax.jit(triplet_semihard_loss)(x, labels, margin, mask))
        assert got == pytest.approx(_reference_triplet(x, labels, margin, mask), rel=1e-5)
        assert got > 0


def test_an_anchor_without_negatives_does_not_count():
    x, labels = _batch(2, size=6)
    labels[:] = 3
    assert float(triplet_semihard_loss(x, labels)) == 0.0


def test_contrastive_equals_the_loop_reference():
    x, labels = _batch(3)
    mask = np.r_[np.ones(30), np.zeros(2)].astype(np.float32)
    got = float(jax.jit(contrastive_loss)(x, labels, 1.0, mask))
    assert got == pytest.approx(_reference_contrastive(x, labels, 1.0, mask), rel=1e-5)


def test_supervised_contrastive_equals_the_loop_reference():
    x, labels = _batch(5)
    labels[0] = 99  # an anchor without positives does not count, but is a negative to others
    mask = np.r_[np.ones(29), np.zeros(3)].astype(np.float32)
    for temperature in (0.1, 0.5):
        got = float(jax.jit(supervised_contrastive_loss)(x, labels, temperature, mask))
        assert got == pytest.approx(_reference_supcon(x, labels, temperature, mask), rel=1e-5)
    grads = jax.grad(supervised_contrastive_loss)(x, labels, 0.1, mask)
    assert np.all(np.isfinite(grads)) and np.any(grads[:29] != 0)
    np.testing.assert_array_equal(grads[29:], 0.0)  # padding gets no gradient


def test_distance_gradients_are_finite_for_duplicate_embeddings():
    x, labels = _batch(4, size=8)
    x[1] = x[0]
    grads = jax.grad(triplet_semihard_loss)(x, labels, 0.5)
    assert np.all(np.isfinite(grads)) and np.any(grads != 0)
    np.testing.assert_allclose(np.diag(pairwise_distances(x)), 0.0)


def test_sigmoid_bce_with_positive_weights():
    rng = np.random.default_rng(5)
    logits = (rng.normal(size=(16, 4)) * 4).astype(np.float32)
    labels = rng.integers(0, 2, (16, 4)).astype(np.float32)
    plain = optax.sigmoid_binary_cross_entropy(logits, labels).mean(-1)
    np.testing.assert_allclose(sigmoid_bce(logits, labels), plain, rtol=1e-5, atol=1e-6)
    weights = np.float32([1.0, 3.0, 0.5, 2.0])
    p = 1 / (1 + np.exp(-logits.astype(np.float64)))
    expected = -(weights * labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean(-1)
    np.testing.assert_allclose(sigmoid_bce(logits, labels, weights), expected, rtol=1e-5)


def test_positive_weights_balance_each_label():
    labels = np.zeros((10, 3), np.uint8)
    labels[:2, 0] = 1  # 2 positives, 8 negatives
    labels[:5, 1] = 1
    np.testing.assert_allclose(positive_weights(labels), [4.0, 1.0, 1.0])
    np.testing.assert_allclose(positive_weights(labels, max_weight=3.0), [3.0, 1.0, 1.0])


# --- one device vs 8 simulated devices ------------------------------------------------------

PROBE = r"""
import json, sys
import jax, numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
from vision_jax.losses.metric_learning import LOSSES, gather_batch
assert jax.device_count() == 8, jax.devices()
data = np.load(sys.argv[1])
x, labels, mask = data["x"], data["labels"], data["mask"]
mesh = Mesh(np.asarray(jax.devices()), ("data",))
rows = NamedSharding(mesh, P("data"))
out = {}
for name, loss in LOSSES.items():
    sharded = [jax.device_put(a, rows) for a in (x, labels, mask)]
    value, grad = jax.jit(jax.value_and_grad(lambda e, l, m: loss(e, l, mask=m)))(*sharded)
    assert len(grad.sharding.device_set) == 8
    out[name + "/jit"] = float(value)
    out[name + "/jit_grad"] = np.asarray(grad).tolist()
    def per_device(e, l, m):
        e, l, m = gather_batch((e, l, m), "data")
        return loss(e, l, mask=m)[None]
    mapped = jax.jit(jax.shard_map(per_device, mesh=mesh, in_specs=(P("data"),) * 3,
                                   out_specs=P("data")))
    values = np.asarray(mapped(*sharded))
    out[name + "/shard_map"] = values.tolist()
# The verification task as the shard_map strategy runs it: a linear embedding of replicated
# weights, the loss per device (gathering the global batch), parameter gradients pmean'd.
from vision_jax.tasks.verification import VerificationTask
inputs, w = data["inputs"], data["w"]
for name in LOSSES:
    # No gather_axes: the task finds the bound batch axes itself, as in the loop's step.
    task = VerificationTask(loss=name)
    def per_device_step(w, inputs, labels):
        def loss_fn(w):
            return task.loss(inputs @ w, {"label": labels})
        w = jax.lax.pcast(w, ("data",), to="varying")
        (value, sums), grad = jax.value_and_grad(loss_fn, has_aux=True)(w)
        return (jax.lax.pmean(value, "data"), jax.lax.pmean(grad, "data"),
                jax.lax.psum(sums, "data"))
    step = jax.jit(jax.shard_map(per_device_step, mesh=mesh,
                                 in_specs=(P(), P("data"), P("data")), out_specs=P()))
    value, grad, sums = step(w, jax.device_put(inputs, rows), jax.device_put(labels, rows))
    out[name + "/task_value"] = float(value)
    out[name + "/task_grad"] = np.asarray(grad).tolist()
    out[name + "/task_sums"] = {k: float(v) for k, v in sums.items()}
print(json.dumps(out))
"""


def test_semihard_mining_is_global_on_8_devices(tmp_path):
    x, labels = _batch(6, size=64, dim=16, identities=6)
    mask = np.r_[np.ones(60), np.zeros(4)].astype(np.float32)
    rng = np.random.default_rng(7)
    inputs = rng.normal(size=(64, 12)).astype(np.float32)
    w = rng.normal(size=(12, 16)).astype(np.float32)
    np.savez(tmp_path / "batch.npz", x=x, labels=labels, mask=mask, inputs=inputs, w=w)
    result = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "batch.npz")],
                            cwd=REPO, env=cpu_env(8), capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    for name, loss in (("triplet", triplet_semihard_loss), ("contrastive", contrastive_loss),
                       ("supcon", supervised_contrastive_loss)):
        value, grad = jax.value_and_grad(lambda e, loss=loss: loss(e, labels, mask=mask))(x)
        one_device = float(value)
        assert out[f"{name}/jit"] == pytest.approx(one_device, rel=1e-5)
        np.testing.assert_allclose(out[f"{name}/jit_grad"], grad, rtol=1e-4, atol=1e-6)
        # Every device mined the whole batch: all eight hold the one-device loss.
        np.testing.assert_allclose(out[f"{name}/shard_map"], [one_device] * 8, rtol=1e-5)
        # The task under the shard_map strategy: the global loss and its exact gradient.
        task = VerificationTask(loss=name)
        (value, sums), grad = jax.value_and_grad(
            lambda w, task=task: task.loss(inputs @ w, {"label": labels}), has_aux=True)(w)
        assert out[f"{name}/task_value"] == pytest.approx(float(value), rel=1e-5)
        np.testing.assert_allclose(out[f"{name}/task_grad"], grad, rtol=1e-4, atol=1e-6)
        assert out[f"{name}/task_sums"]["count"] == 64
        assert out[f"{name}/task_sums"]["loss"] == pytest.approx(float(sums["loss"]), rel=1e-5)
    # Per-device mining would give another loss: the test can tell the two apart.
    local = np.mean([float(triplet_semihard_loss(x[i:i + 8], labels[i:i + 8], mask=mask[i:i + 8]))
                     for i in range(0, 64, 8)])
    assert abs(local - out["triplet/jit"]) > 1e-3
