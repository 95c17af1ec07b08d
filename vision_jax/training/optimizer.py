"""Optimiser and learning-rate schedule from the config, built with optax."""

from __future__ import annotations

import math

import jax
import ml_collections
import optax
from flax import traverse_util

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
SCHEDULES = ("constant", "warmup_cosine", "step", "plateau")


def learning_rate_schedule(
    config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int
) -> optax.Schedule:
    """The per-step learning rate. `plateau` is constant here: its scaling is
    applied by `optax.contrib.reduce_on_plateau` inside the optimiser chain."""
    s, peak = config.schedule, config.optimizer.learning_rate
    warmup = s.warmup_steps or int(round(s.warmup_epochs * steps_per_epoch))
    if s.name in ("constant", "plateau"):
        main = optax.constant_schedule(peak)
    elif s.name == "warmup_cosine":
        main = optax.cosine_decay_schedule(peak, max(total_steps - warmup, 1), alpha=s.end_factor)
    elif s.name == "step":
        boundaries = {int(round(e * steps_per_epoch)) - warmup: s.decay_factor
                      for e in s.decay_epochs}
        main = optax.piecewise_constant_schedule(peak, boundaries)
    else:
        raise ValueError(f"config.schedule.name={s.name!r} is unknown; use one of {SCHEDULES}")
    if warmup <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), main], [warmup])


def weight_decay_mask(params) -> object:
    """True for convolution and dense kernels: biases and norm scales/offsets are
    not decayed (the usual ImageNet recipe)."""
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({k: k[-1] == "kernel" for k in flat})


def create_optimizer(
    config: ml_collections.ConfigDict, steps_per_epoch: int, total_steps: int
) -> optax.GradientTransformationExtraArgs:
    """The full transformation: clip → weight decay → optimiser → plateau → accumulation.

    `update` must be called with `value=loss` (reduce-on-plateau reads it).
    """
    o = config.optimizer
    lr = learning_rate_schedule(config, steps_per_epoch, total_steps)
    mask = weight_decay_mask if o.weight_decay_on == "kernels" else None
    parts = []
    if o.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(o.grad_clip_norm))
    if o.weight_decay > 0 and o.name != "adamw":
        # Classic L2 regularisation: the decay term joins the gradient before momentum.
        parts.append(optax.add_decayed_weights(o.weight_decay, mask=mask))
    if o.name == "sgd":
        parts.append(optax.sgd(lr, momentum=o.momentum or None, nesterov=o.nesterov))
    elif o.name == "adam":
        parts.append(optax.adam(lr, b1=o.b1, b2=o.b2, eps=o.eps))
    elif o.name == "adamw":
        parts.append(optax.adamw(lr, b1=o.b1, b2=o.b2, eps=o.eps,
                                 weight_decay=o.weight_decay, mask=mask))
    elif o.name == "rmsprop":
        parts.append(optax.rmsprop(lr, decay=o.rmsprop_decay, eps=o.eps,
                                   momentum=o.momentum or None, nesterov=o.nesterov))
    else:
        raise ValueError(f"config.optimizer.name={o.name!r} is unknown; use one of {OPTIMIZERS}")
    if config.schedule.name == "plateau":
        s = config.schedule
        parts.append(optax.contrib.reduce_on_plateau(
            factor=s.plateau_factor, patience=s.plateau_patience, cooldown=s.plateau_cooldown,
            # Judge the mean training loss of a whole epoch, not single noisy steps.
            accumulation_size=max(steps_per_epoch // max(o.grad_accum_steps, 1), 1)))
    tx = optax.chain(*parts)
    if o.grad_accum_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=o.grad_accum_steps)
    return optax.with_extra_args_support(tx)


def current_learning_rate(config, steps_per_epoch: int, total_steps: int, step: int,
                          opt_state=None) -> float:
    """The learning rate in effect at `step`, including a plateau reduction."""
    lr = float(learning_rate_schedule(config, steps_per_epoch, total_steps)(step))
    if opt_state is not None and config.schedule.name == "plateau":
        states = jax.tree_util.tree_leaves(
            opt_state, is_leaf=lambda x: isinstance(x, optax.contrib.ReduceLROnPlateauState))
        for st in states:
            if isinstance(st, optax.contrib.ReduceLROnPlateauState):
                lr *= float(st.scale)
    return lr


def total_train_steps(config: ml_collections.ConfigDict, steps_per_epoch: int) -> int:
    if config.num_steps > 0:
        return int(config.num_steps)
    return int(math.ceil(config.num_epochs * steps_per_epoch))
