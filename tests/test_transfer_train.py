"""Transfer learning inside the trainer: ``config.init_from``, ``config.freeze`` and the
two-phase recipe (``config.transfer``), through the real `train_and_evaluate`, orbax
checkpoints and the built-in digits.

What could break: a frozen parameter or a frozen batch norm's statistics moving by one bit
during real steps; the head not training; a head of a new size not re-initialised; the
two-phase base moving in phase 1 or a resumed two-phase run diverging from an uninterrupted
one; a bad ``init_from`` / ``freeze`` giving anything but one line naming the field.
"""

from __future__ import annotations

import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util

from configs import mnist_cnn, transfer_data
from vision_jax import models
from vision_jax.errors import ConfigError
from vision_jax.training import loop
from vision_jax.training.optimizer import OptimizerSection, ScheduleSection, create_optimizer
from vision_jax.training.run_config import parse_config
from vision_jax.weights import init_from
from vision_jax.weights.frozen_norms import with_frozen_batch_norms
from vision_jax.weights.section import PhasesSection, TransferSection


def _flat(tree) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in
            traverse_util.flatten_dict(jax.device_get(tree), sep="/").items()}


def _digits_config(data_dir: str, **overrides):
    """`mnist_cnn:smoke` on a private data dir, without augmentation or dropout noise."""
    config = mnist_cnn.get_config("smoke")
    config.data_dir = data_dir
    config.model.dropout_rate = 0.0
    config.progress_bar = False
    config.update_from_flattened_dict(overrides)
    return config


def _vgg_bn_config(data_dir: str, **overrides):
    """A small model with batch norms: vgg11_bn (16 hidden units) on digits at 32x32."""
    config = _digits_config(data_dir, **{"model_name": "vgg11_bn", "image_size": 32,
                                         "num_steps": 3, "eval_every_steps": 3,
                                         "checkpoint_every_steps": 3, **overrides})
    config.model.hidden_units = 16
    return config


def _write_source(workdir: str, config) -> dict[str, np.ndarray]:
    """A workdir holding a step-0 checkpoint whose variables differ from any fresh init
    (another seed, random batch-norm statistics); returns them flattened."""
    exp = loop.build_experiment(config, workdir)
    state = loop.init_state(exp, jax.random.key(123))
    # Close to the initial (0, 1), so activations stay alive through the frozen norms.
    stats = jax.tree.map(lambda x: x + jax.random.uniform(jax.random.key(7), x.shape, x.dtype,
                                                          -0.1, 0.1), state.batch_stats)
    state = state.replace(batch_stats=jax.device_put(stats, jax.tree.map(
        lambda s: s.sharding, exp.abstract_state.batch_stats)))
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2) + "\n")
    exp.checkpointer.save(state, {}, force=True)
    exp.checkpointer.close()
    return _flat(state.variables())


@pytest.fixture(scope="module")
def five_digits(tmp_path_factory) -> dict:
    """Config overrides for a 5-class target: the digits 0-4 as a folder dataset (the
    transfer experiment's source view), so a 10-class source's head no longer fits."""
    source_view, _ = transfer_data.write_views(str(tmp_path_factory.mktemp("views")))
    return {"dataset": f"folder:{source_view}", "num_classes": 5}


def test_init_from_a_workdir_then_frozen_params_and_batch_stats_are_bit_for_bit_unchanged(
        tmp_path, digits_data_dir, five_digits):
    source = _write_source(str(tmp_path / "source"), _vgg_bn_config(digits_data_dir))
    target_dir = str(tmp_path / "target")
    config = _vgg_bn_config(digits_data_dir, **five_digits, **{
        "init_from.path": str(tmp_path / "source"), "freeze": r"^conv[1-4]_"})
    loop.train_and_evaluate(config, target_dir)

    exp, state = loop.restore_experiment(target_dir)
    assert int(state.step) == 3
    trained = _flat(state.variables())
    fresh = _flat(loop.init_state(exp, jax.random.split(jax.random.key(config.seed))[0])
                  .variables())
    frozen = [p for p in trained if p.split("/")[1].startswith(("conv1_", "conv2_", "conv3_",
                                                                 "conv4_"))]
    assert any(p.startswith("batch_stats/") for p in frozen)
    for path in frozen:  # params and batch-norm statistics alike
        np.testing.assert_array_equal(trained[path], source[path], err_msg=path)
    for path in ("params/conv5_1/kernel", "params/fc1/kernel", "batch_stats/conv5_1_bn/mean",
                 "batch_stats/conv5_2_bn/var"):
        assert not np.array_equal(trained[path], source[path]), path
    # The head was built for 5 classes, the source's for 10: re-initialised, then trained.
    assert trained["params/classifier/kernel"].shape == (16, 5)
    assert not np.array_equal(trained["params/classifier/kernel"],
                              fresh["params/classifier/kernel"])
    with open(os.path.join(target_dir, "init_from.json")) as f:
        report = json.load(f)
    assert report["format"] == "checkpoint"
    assert report["reinitialised"] == ["params/classifier/bias", "params/classifier/kernel"]
    assert "batch_stats/conv1_1_bn/mean" in report["loaded"]
    assert report["skipped"] == [] and report["unused"] == []


def test_frozen_batch_norms_normalise_with_their_stored_statistics():
    model = models.create("vgg11_bn", num_classes=3, hidden_units=8)
    images = jax.random.normal(jax.random.key(0), (4, 32, 32, 3))
    variables = model.init(jax.random.key(1), images, train=False)
    variables["batch_stats"] = jax.tree.map(lambda x: x + 0.5, variables["batch_stats"])
    transfer = TransferSection(freeze=r"^conv")  # every norm, not the dense layers
    wrapped = with_frozen_batch_norms(model, transfer)
    train_out, updates = wrapped.apply(variables, images, train=True, mutable=["batch_stats"])
    inference = model.apply(variables, images, train=False)
    np.testing.assert_array_equal(train_out, inference)
    for path, value in _flat(updates["batch_stats"]).items():
        np.testing.assert_array_equal(value, _flat(variables["batch_stats"])[path])
    # Without the freeze the same call normalises with the batch and moves the statistics.
    moved, updates = model.apply(variables, images, train=True, mutable=["batch_stats"])
    assert not np.allclose(moved, inference)
    assert with_frozen_batch_norms(model, TransferSection()) is model


def _sgd_two_phase(head_epochs: float, freeze: str = ""):
    transfer = TransferSection(freeze=freeze, phases=PhasesSection(
        head=r"^head/", head_epochs=head_epochs, finetune_lr_scale=0.5))
    return create_optimizer(OptimizerSection(name="sgd", learning_rate=0.1, momentum=0.0),
                            ScheduleSection(), steps_per_epoch=2, total_steps=8,
                            transfer=transfer)


def test_two_phase_base_waits_one_phase_then_everything_trains_at_the_scaled_rate():
    params = {"base": {"kernel": jnp.ones(3)}, "frozen": {"kernel": jnp.ones(2)},
              "head": {"kernel": jnp.ones(2)}}
    tx = _sgd_two_phase(head_epochs=1.0, freeze=r"^frozen/")
    state = tx.init(params)
    grads = jax.tree.map(jnp.ones_like, params)
    steps = []
    for _ in range(4):
        updates, state = tx.update(grads, state, params, value=jnp.zeros(()))
        steps.append(_flat(updates))
    for step, updates in enumerate(steps):
        phase1 = step < 2  # head_epochs x steps_per_epoch
        np.testing.assert_array_equal(updates["frozen/kernel"], 0.0)
        np.testing.assert_allclose(updates["base/kernel"], 0.0 if phase1 else -0.05)
        if phase1:  # exactly: the base does not move by one bit
            np.testing.assert_array_equal(updates["base/kernel"], 0.0)
        np.testing.assert_allclose(updates["head/kernel"], -0.1 if phase1 else -0.05)


@pytest.mark.slow  # three trainings; the schedule itself is tested above without training
def test_two_phase_resumed_run_equals_the_uninterrupted_one(tmp_path, digits_data_dir):
    overrides = {"transfer.head_epochs": 0.04, "transfer.finetune_lr_scale": 0.5,
                 "checkpoint_every_steps": 3, "eval_every_steps": 6, "num_steps": 6}
    # 125 steps per epoch: the head trains alone for 5 steps, so the resume at step 3 falls
    # in phase 1 and the switch to phase 2 after it.
    config = _digits_config(digits_data_dir, **overrides)
    loop.train_and_evaluate(config, str(tmp_path / "straight"))
    loop.train_and_evaluate(_digits_config(digits_data_dir, **{**overrides, "num_steps": 3}),
                            str(tmp_path / "resumed"))
    loop.train_and_evaluate(config, str(tmp_path / "resumed"))
    straight = _flat(loop.restore_experiment(str(tmp_path / "straight"))[1].params)
    resumed = _flat(loop.restore_experiment(str(tmp_path / "resumed"))[1].params)
    for path, value in straight.items():
        np.testing.assert_array_equal(resumed[path], value, err_msg=path)


# -- one-line errors naming the field -----------------------------------------------------


@pytest.mark.parametrize("overrides, message", [
    ({"freeze": "conv[1"}, "config.freeze='conv[1' is not a valid regular expression"),
    ({"init_from.format": "onnx"}, "config.init_from.format='onnx' must be one of"),
    ({"init_from.skip": "(("}, "config.init_from.skip='((' is not a valid regular"),
    ({"transfer.head_epochs": -1.0}, "config.transfer.head_epochs=-1.0 must be >= 0"),
    ({"transfer.finetune_lr_scale": 0.0}, "config.transfer.finetune_lr_scale=0.0 must be in"),
])
def test_bad_transfer_fields_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match="^" + re.escape(message)) as e:
        parse_config(_digits_config("", **overrides))
    assert "\n" not in str(e.value)


def _abstract_params(config):
    run = parse_config(config)
    model = models.create(run.model.model_name, **run.model.kwargs)
    return run, jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)),
                                                  train=False))["params"]


@pytest.mark.parametrize("overrides, message", [
    ({"freeze": "^stem_"}, "config.freeze='^stem_' matches no parameter of model 'seed_cnn'"),
    ({"transfer.head_epochs": 1.0, "transfer.head": "^fc/"},
     "config.transfer.head='^fc/' matches no parameter"),
    ({"transfer.head_epochs": 1.0, "transfer.head": "kernel|bias"},
     "config.transfer.head='kernel|bias' matches every parameter"),
])
def test_regexes_that_match_nothing_are_errors(overrides, message):
    run, params = _abstract_params(_digits_config("", **overrides))
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        init_from.check_regexes(run.transfer, params, run.model.model_name)


def test_bad_init_from_sources_are_one_line_errors(tmp_path):
    not_a_workdir = tmp_path / "empty"
    not_a_workdir.mkdir()
    corrupt = tmp_path / "weights.safetensors"
    corrupt.write_bytes(b"not safetensors")
    cases = [
        ({"init_from.path": str(tmp_path / "missing")}, "does not exist"),
        ({"init_from.path": str(not_a_workdir)}, "has no config.json"),
        ({"init_from.path": str(not_a_workdir), "init_from.format": "torch"},
         "is a directory, but config.init_from.format='torch' reads a file"),
        ({"init_from.path": str(corrupt)}, "(format 'torch'): "),
    ]
    for overrides, message in cases:
        run = parse_config(_digits_config("", **overrides))
        with pytest.raises(ConfigError) as e:
            init_from.load_source(run.transfer, run)
        line = str(e.value)
        assert line.startswith(f"config.init_from.path={overrides['init_from.path']!r}"), line
        assert message in line and "\n" not in line


def test_init_from_an_incompatible_model_fails_before_training(tmp_path, digits_data_dir,
                                                               five_digits):
    source = str(tmp_path / "source")
    _write_source(source, _vgg_bn_config(digits_data_dir))
    config = _digits_config(digits_data_dir, **five_digits,
                            **{"init_from.path": source})  # seed_cnn
    with pytest.raises(ConfigError, match=r"^config.init_from.path=.* shares no tensor .* "
                                          r"model 'seed_cnn'"):
        loop.train_and_evaluate(config, str(tmp_path / "target"))
