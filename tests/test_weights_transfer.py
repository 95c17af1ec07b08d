"""Transfer-learning helpers: merging imported variables, and freezing parameters in optax.

Merging: tensors of the same path and shape are loaded, ``skip`` keeps initial values, a head
built for a new ``num_classes`` is re-initialised, and the report says which. Freezing: after
real optimiser steps (Adam with weight decay, SGD with momentum) the frozen parameters are
bit-for-bit unchanged and the others have moved.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vision_jax import models
from vision_jax.weights import freeze_labels, freeze_mask, merge_variables
from vision_jax.weights.transfer import frozen


def _init(model, seed: int, size: int = 32) -> dict:
    return model.init(jax.random.key(seed), jnp.zeros((1, size, size, 3)), train=False)


@pytest.fixture(scope="module")
def resnets() -> dict:
    source = models.create("resnet18", num_classes=1000)
    target = models.create("resnet18", num_classes=5)
    return {"source": _init(source, 0), "target_model": target, "target": _init(target, 1)}


def test_merge_loads_the_base_and_reinitialises_a_head_of_a_new_size(resnets):
    merged, report = merge_variables(resnets["target"], resnets["source"])
    assert report.reinitialised == ("params/classifier/kernel", "params/classifier/bias")
    assert report.skipped == () and report.not_in_source == () and report.unused == ()
    assert "batch_stats/stem_bn/mean" in report.loaded
    np.testing.assert_array_equal(merged["params"]["stem_conv"]["kernel"],
                                  resnets["source"]["params"]["stem_conv"]["kernel"])
    np.testing.assert_array_equal(merged["params"]["classifier"]["kernel"],
                                  resnets["target"]["params"]["classifier"]["kernel"])
    assert "re-initialised: params/classifier/kernel, params/classifier/bias" in report.summary()
    # The merged tree is the target model's: it runs.
    logits = resnets["target_model"].apply(merged, jnp.ones((2, 32, 32, 3)), train=False)
    assert logits.shape == (2, 5)


def test_merge_skip_keeps_the_matching_tensors_initial(resnets):
    same_head = _init(models.create("resnet18", num_classes=1000), 2)
    merged, report = merge_variables(same_head, resnets["source"], skip=r"^params/stage4_")
    assert report.skipped and all(p.startswith("params/stage4_") for p in report.skipped)
    assert "params/classifier/kernel" in report.loaded
    np.testing.assert_array_equal(merged["params"]["stage4_block1"]["conv1"]["kernel"],
                                  same_head["params"]["stage4_block1"]["conv1"]["kernel"])
    np.testing.assert_array_equal(merged["params"]["stage3_block1"]["conv1"]["kernel"],
                                  resnets["source"]["params"]["stage3_block1"]["conv1"]["kernel"])


def test_merge_reports_tensors_the_source_lacks_or_has_in_excess():
    vgg = _init(models.create("vgg11", num_classes=10, hidden_units=16), 0)
    partial = {"params": {"conv1_1": vgg["params"]["conv1_1"], "extra": {"w": jnp.ones(3)}}}
    _, report = merge_variables(vgg, partial)
    assert report.loaded == ("params/conv1_1/kernel", "params/conv1_1/bias")
    assert report.unused == ("params/extra/w",)
    assert "params/fc1/kernel" in report.not_in_source


def test_freeze_labels_and_mask_follow_the_regex(resnets):
    params = resnets["target"]["params"]
    labels = freeze_labels(params, r"^(stem_|stage[12]_)")
    assert labels["stem_conv"]["kernel"] == "frozen"
    assert labels["stage2_block1"]["conv1"]["kernel"] == "frozen"
    assert labels["stage3_block1"]["conv1"]["kernel"] == "trainable"
    assert labels["classifier"]["bias"] == "trainable"
    mask = freeze_mask(params, "classifier")
    assert mask["classifier"]["kernel"] is True and mask["stem_conv"]["kernel"] is False


@pytest.mark.parametrize("base", [optax.adamw(1e-2, weight_decay=0.1),
                                  optax.sgd(0.1, momentum=0.9)])
def test_frozen_parameters_are_bit_for_bit_unchanged_after_steps(resnets, base):
    model = resnets["target_model"]
    variables = resnets["target"]
    tx = frozen(base, r"^(?!classifier/)")  # everything but the head
    params, batch_stats = variables["params"], variables["batch_stats"]
    opt_state = tx.init(params)
    images = jax.random.normal(jax.random.key(5), (4, 32, 32, 3))
    labels = jnp.arange(4) % 5

    @jax.jit
    def step(params, batch_stats, opt_state):
        def loss_fn(p):
            logits, updates = model.apply({"params": p, "batch_stats": batch_stats}, images,
                                          train=True, mutable=["batch_stats"])
            loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
            return loss, updates["batch_stats"]

        grads, new_stats = jax.grad(loss_fn, has_aux=True)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), new_stats, opt_state

    new = params
    for _ in range(3):
        new, batch_stats, opt_state = step(new, batch_stats, opt_state)
    for path, before in jax.tree_util.tree_leaves_with_path(params):
        after = _at(new, path)
        if jax.tree_util.keystr(path).startswith("['classifier']"):
            assert not np.array_equal(before, after), path
        else:
            np.testing.assert_array_equal(before, after, err_msg=str(path))


def _at(tree, path):
    for key in path:
        tree = tree[key.key]
    return tree
