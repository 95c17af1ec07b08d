"""The optimiser chain and schedules built from their config sections and registries."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vision_jax.errors import ConfigError
from vision_jax.sections import build
from vision_jax.training import optimizer as opt
from vision_jax.training.defaults import default_config


def _config(**fields):
    """(OptimizerSection, ScheduleSection) of the default config with `fields` changed."""
    c = default_config()
    c.update_from_flattened_dict(fields)
    return (build(opt.OptimizerSection, c.optimizer, "config.optimizer"),
            build(opt.ScheduleSection, c.schedule, "config.schedule"))


def test_warmup_cosine_matches_formula():
    c = _config(**{"schedule.name": "warmup_cosine", "schedule.warmup_epochs": 2.0,
                   "optimizer.learning_rate": 0.4})
    steps_per_epoch, total = 10, 100
    lr = opt.learning_rate_schedule(*c, steps_per_epoch, total)
    warmup = 20
    for step in (0, 5, 10, 19):
        assert lr(step) == pytest.approx(0.4 * step / warmup, abs=1e-7)
    for step in (20, 40, 60, 99):
        t = (step - warmup) / (total - warmup)
        expected = 0.4 * 0.5 * (1 + math.cos(math.pi * t))
        assert lr(step) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_step_decay_multiplies_at_epochs():
    c = _config(**{"schedule.name": "step", "schedule.decay_epochs": (3.0, 6.0),
                   "optimizer.learning_rate": 1.0})
    lr = opt.learning_rate_schedule(*c, steps_per_epoch=10, total_steps=100)
    assert lr(29) == pytest.approx(1.0)
    assert lr(30) == pytest.approx(0.1)
    assert lr(59) == pytest.approx(0.1)
    assert lr(60) == pytest.approx(0.01)


def test_weight_decay_mask_only_kernels():
    params = {"conv": {"kernel": jnp.ones((3, 3, 1, 2)), "bias": jnp.ones(2)},
              "bn": {"scale": jnp.ones(2), "bias": jnp.zeros(2)}}
    mask = opt.weight_decay_mask(params)
    assert mask == {"conv": {"kernel": True, "bias": False},
                    "bn": {"scale": False, "bias": False}}
    # SGD without momentum, zero gradient: only the kernel moves, by lr * wd * w.
    c = _config(**{"optimizer.name": "sgd", "optimizer.momentum": 0.0,
                   "optimizer.learning_rate": 0.5, "optimizer.weight_decay": 0.1})
    tx = opt.create_optimizer(*c, 10, 100)
    grads = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(grads, tx.init(params), params, value=jnp.zeros(()))
    np.testing.assert_allclose(updates["conv"]["kernel"], -0.5 * 0.1 * 1.0)
    np.testing.assert_allclose(updates["conv"]["bias"], 0.0)
    np.testing.assert_allclose(updates["bn"]["scale"], 0.0)


@pytest.mark.parametrize("name", ["sgd", "adam", "adamw", "rmsprop"])
def test_each_optimizer_descends(name):
    c = _config(**{"optimizer.name": name, "optimizer.learning_rate": 0.05})
    tx = opt.create_optimizer(*c, 10, 100)
    params = {"w": jnp.array([3.0, -2.0])}
    state = tx.init(params)
    loss = lambda p: jnp.sum(p["w"] ** 2)
    start = loss(params)
    for _ in range(20):
        value, grads = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grads, state, params, value=value)
        params = optax.apply_updates(params, updates)
    assert loss(params) < 0.8 * start


def test_gradient_clipping_bounds_update():
    c = _config(**{"optimizer.name": "sgd", "optimizer.momentum": 0.0,
                   "optimizer.learning_rate": 1.0, "optimizer.grad_clip_norm": 1.0})
    tx = opt.create_optimizer(*c, 10, 100)
    params = {"w": jnp.zeros(2)}
    updates, _ = tx.update({"w": jnp.array([30.0, 40.0])}, tx.init(params), params,
                           value=jnp.zeros(()))
    np.testing.assert_allclose(updates["w"], [-0.6, -0.8], rtol=1e-6)


def test_gradient_accumulation_equals_mean_gradient():
    """k accumulated micro-batches give the update of one step on their mean gradient."""
    base = {"optimizer.name": "sgd", "optimizer.momentum": 0.9, "optimizer.learning_rate": 0.1}
    accumulated = opt.create_optimizer(*_config(**base, **{"optimizer.grad_accum_steps": 3}),
                                       10, 100)
    single = opt.create_optimizer(*_config(**base), 10, 100)
    params = {"w": jnp.array([1.0, 2.0])}
    grads = [{"w": jnp.array(g)} for g in ([1.0, 0.0], [0.0, 3.0], [2.0, 3.0])]
    state = accumulated.init(params)
    p = params
    for g in grads:
        u, state = accumulated.update(g, state, p, value=jnp.zeros(()))
        p = optax.apply_updates(p, u)
    mean = {"w": sum(g["w"] for g in grads) / 3}
    u, _ = single.update(mean, single.init(params), params, value=jnp.zeros(()))
    np.testing.assert_allclose(p["w"], optax.apply_updates(params, u)["w"], rtol=1e-6)


def test_plateau_reduces_learning_rate_when_loss_stalls():
    c = _config(**{"optimizer.name": "sgd", "optimizer.momentum": 0.0,
                   "optimizer.learning_rate": 1.0, "schedule.name": "plateau",
                   "schedule.plateau_patience": 2, "schedule.plateau_factor": 0.5})
    steps_per_epoch = 4
    tx = opt.create_optimizer(*c, steps_per_epoch, 100)
    params = {"w": jnp.zeros(1)}
    state = tx.init(params)
    grads = {"w": jnp.ones(1)}
    sizes = []
    for _ in range(6 * steps_per_epoch):  # six epochs of a flat loss
        u, state = tx.update(grads, state, params, value=jnp.asarray(1.0))
        sizes.append(float(-u["w"][0]))
    assert sizes[0] == pytest.approx(1.0)
    assert sizes[-1] < 0.6  # reduced at least once
    lr = opt.current_learning_rate(*c, steps_per_epoch, 100, 23, state)
    assert lr == pytest.approx(sizes[-1])


def test_total_steps_from_epochs_or_steps():
    assert opt.total_train_steps(2.5, 0, 10) == 25
    assert opt.total_train_steps(2.5, 7, 10) == 7


def test_names_are_registries_with_did_you_mean():
    assert opt.OPTIMIZERS.names() == ["adam", "adamw", "rmsprop", "sgd"]
    assert opt.SCHEDULES.names() == ["constant", "plateau", "step", "warmup_cosine"]
    with pytest.raises(ConfigError, match=r"config\.optimizer\.name='adamx' is unknown; did you "
                                          r"mean 'adam'\?"):
        _config(**{"optimizer.name": "adamx"})
    with pytest.raises(ConfigError, match=r"config\.schedule\.warmup_epochs=-1\.0 must be >= 0"):
        _config(**{"schedule.warmup_epochs": -1.0})


def test_a_registered_optimizer_is_usable_by_name():
    @opt.OPTIMIZERS.register("test_sign_sgd")
    def _sign_sgd(o, lr):
        return optax.chain(optax.scale_by_sign(), optax.scale_by_learning_rate(lr))

    try:
        optimizer, schedule = _config(**{"optimizer.learning_rate": 0.5})
        optimizer = dataclasses.replace(optimizer, name="test_sign_sgd")
        tx = opt.create_optimizer(optimizer, schedule, 10, 100)
        params = {"w": jnp.zeros(2)}
        updates, _ = tx.update({"w": jnp.array([3.0, -0.1])}, tx.init(params), params,
                               value=jnp.zeros(()))
        np.testing.assert_allclose(updates["w"], [-0.5, 0.5])
    finally:
        opt.OPTIMIZERS._entries.pop("test_sign_sgd")
