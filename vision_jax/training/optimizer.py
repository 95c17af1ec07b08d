"""Optimiser and learning-rate schedule, built with optax from their config sections.

Optimisers and schedules are chosen by name through the `OPTIMIZERS` and `SCHEDULES`
registries; a new one is a decorated function here (or in a plug-in module)::

    @OPTIMIZERS.register("lion")
    def _lion(o: OptimizerSection, lr: optax.Schedule) -> optax.GradientTransformation:
        return optax.lion(lr, b1=o.b1, b2=o.b2)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

from vision_jax.registry import Registry
from vision_jax.sections import in_range, non_negative, one_of, option, positive, registered
from vision_jax.weights.section import TransferSection
from vision_jax.weights.transfer import frozen, path_string

# Partition labels of the two-phase recipe.
HEAD, BASE = "head", "base"

# name -> (section, schedule) -> the optax transformation.
OPTIMIZERS: Registry[Callable] = Registry("optimizer", field="config.optimizer.name")
# name -> (section, peak, warmup, steps_per_epoch, total_steps) -> the main schedule.
SCHEDULES: Registry[Callable] = Registry("schedule", field="config.schedule.name")


@dataclasses.dataclass(frozen=True)
class OptimizerSection:
    """``config.optimizer``."""

    name: str = option("adam", "registered optimizer: sgd | adam | adamw | rmsprop",
                       check=registered(OPTIMIZERS))
    learning_rate: float = option(1e-3, "peak learning rate", check=positive)
    momentum: float = option(0.9, "sgd / rmsprop momentum (0 = none)",
                             check=in_range(0, 1, high_open=True))
    nesterov: bool = option(False, "Nesterov momentum")
    b1: float = option(0.9, "adam(w) first-moment decay", check=in_range(0, 1, high_open=True))
    b2: float = option(0.999, "adam(w) second-moment decay",
                        check=in_range(0, 1, high_open=True))
    eps: float = option(1e-8, "denominator epsilon", check=non_negative)
    rmsprop_decay: float = option(0.9, "rmsprop decay", check=in_range(0, 1, high_open=True))
    weight_decay: float = option(0.0, "decoupled for adamw, L2 added to the gradient otherwise",
                                 check=non_negative)
    weight_decay_on: str = option("kernels", "kernels (no biases, no norm params) | all",
                                  check=one_of("kernels", "all"))
    grad_clip_norm: float = option(0.0, "global-norm clipping (0 = none)", check=non_negative)
    grad_accum_steps: int = option(1, "average gradients over this many batches",
                                   check=lambda v: None if v >= 1 else "must be >= 1")


@dataclasses.dataclass(frozen=True)
class ScheduleSection:
    """``config.schedule``."""

    name: str = option("constant", "registered schedule: constant | warmup_cosine | step | "
                                   "plateau", check=registered(SCHEDULES))
    warmup_epochs: float = option(0.0, "linear warm-up length in epochs", check=non_negative)
    warmup_steps: int = option(0, "> 0 wins over warmup_epochs", check=non_negative)
    end_factor: float = option(0.0, "warmup_cosine: final lr = end_factor * peak",
                               check=in_range(0, 1))
    decay_epochs: tuple[float, ...] = option((), "step: multiply by decay_factor at these "
                                                 "epochs")
    decay_factor: float = option(0.1, "step: the factor", check=in_range(0, 1, low_open=True))
    plateau_patience: int = option(5, "plateau: epochs without improvement of the train loss",
                                   check=non_negative)
    plateau_factor: float = option(0.1, "plateau: the factor",
                                  check=in_range(0, 1, low_open=True))
    plateau_cooldown: int = option(0, "plateau: epochs to wait after a reduction",
                                   check=non_negative)


# -- schedules -----------------------------------------------------------------------------


@SCHEDULES.register("constant")
@SCHEDULES.register("plateau")  # scaled by reduce_on_plateau inside the optimiser chain
def _constant(s: ScheduleSection, peak: float, warmup: int, steps_per_epoch: int,
              total_steps: int) -> optax.Schedule:
    return optax.constant_schedule(peak)


@SCHEDULES.register("warmup_cosine")
def _cosine(s: ScheduleSection, peak: float, warmup: int, steps_per_epoch: int,
            total_steps: int) -> optax.Schedule:
    return optax.cosine_decay_schedule(peak, max(total_steps - warmup, 1), alpha=s.end_factor)


@SCHEDULES.register("step")
def _step(s: ScheduleSection, peak: float, warmup: int, steps_per_epoch: int,
          total_steps: int) -> optax.Schedule:
    boundaries = {int(round(e * steps_per_epoch)) - warmup: s.decay_factor
                  for e in s.decay_epochs}
    return optax.piecewise_constant_schedule(peak, boundaries)


def learning_rate_schedule(optimizer: OptimizerSection, schedule: ScheduleSection,
                           steps_per_epoch: int, total_steps: int) -> optax.Schedule:
    """The per-step learning rate: linear warm-up, then the named schedule. `plateau` is
    constant here: `optax.contrib.reduce_on_plateau` in the optimiser chain scales it."""
    peak = optimizer.learning_rate
    warmup = schedule.warmup_steps or int(round(schedule.warmup_epochs * steps_per_epoch))
    main = SCHEDULES.get(schedule.name)(schedule, peak, warmup, steps_per_epoch, total_steps)
    if warmup <= 0:
        return main
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), main], [warmup])


# -- optimisers ----------------------------------------------------------------------------


def weight_decay_mask(params) -> object:
    """True for convolution and dense kernels: biases and norm scales/offsets are
    not decayed (the usual ImageNet recipe)."""
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({k: k[-1] == "kernel" for k in flat})


def _mask(o: OptimizerSection):
    return weight_decay_mask if o.weight_decay_on == "kernels" else None


@OPTIMIZERS.register("sgd")
def _sgd(o: OptimizerSection, lr: optax.Schedule) -> optax.GradientTransformation:
    return optax.sgd(lr, momentum=o.momentum or None, nesterov=o.nesterov)


@OPTIMIZERS.register("adam")
def _adam(o: OptimizerSection, lr: optax.Schedule) -> optax.GradientTransformation:
    return optax.adam(lr, b1=o.b1, b2=o.b2, eps=o.eps)


@OPTIMIZERS.register("adamw")
def _adamw(o: OptimizerSection, lr: optax.Schedule) -> optax.GradientTransformation:
    return optax.adamw(lr, b1=o.b1, b2=o.b2, eps=o.eps, weight_decay=o.weight_decay,
                       mask=_mask(o))


@OPTIMIZERS.register("rmsprop")
def _rmsprop(o: OptimizerSection, lr: optax.Schedule) -> optax.GradientTransformation:
    return optax.rmsprop(lr, decay=o.rmsprop_decay, eps=o.eps, momentum=o.momentum or None,
                         nesterov=o.nesterov)


# Optimisers that apply `weight_decay` themselves (decoupled), so no L2 term is added.
DECOUPLED_DECAY = frozenset({"adamw"})


def create_optimizer(optimizer: OptimizerSection, schedule: ScheduleSection,
                     steps_per_epoch: int, total_steps: int,
                     transfer: TransferSection | None = None
                     ) -> optax.GradientTransformationExtraArgs:
    """The full transformation: clip → weight decay → optimiser → plateau → accumulation.

    With `transfer` (``config.freeze``, ``config.transfer``): parameters matching ``freeze``
    get zero updates and no optimiser state (`weights.transfer.frozen`); the two-phase
    recipe gives the head and the base their own learning rate (`_two_phase`). One optimiser
    state either way, so a resumed run continues exactly.
    `update` must be called with `value=loss` (reduce-on-plateau reads it).
    """
    o = optimizer
    lr = learning_rate_schedule(o, schedule, steps_per_epoch, total_steps)
    if transfer is not None and transfer.two_phase:
        main = _two_phase(o, lr, transfer, steps_per_epoch)
    else:
        main = OPTIMIZERS.get(o.name)(o, lr)
    parts = []
    if o.grad_clip_norm > 0:
        parts.append(optax.clip_by_global_norm(o.grad_clip_norm))
    if o.weight_decay > 0 and o.name not in DECOUPLED_DECAY:
        # Classic L2 regularisation: the decay term joins the gradient before momentum.
        parts.append(optax.add_decayed_weights(o.weight_decay, mask=_mask(o)))
    parts.append(main)
    if schedule.name == "plateau":
        s = schedule
        parts.append(optax.contrib.reduce_on_plateau(
            factor=s.plateau_factor, patience=s.plateau_patience, cooldown=s.plateau_cooldown,
            # Judge the mean training loss of a whole epoch, not single noisy steps.
            accumulation_size=max(steps_per_epoch // max(o.grad_accum_steps, 1), 1)))
    tx = optax.chain(*parts)
    if transfer is not None and transfer.freeze:
        tx = frozen(tx, transfer.freeze)
    if o.grad_accum_steps > 1:
        tx = optax.MultiSteps(tx, every_k_schedule=o.grad_accum_steps)
    return optax.with_extra_args_support(tx)


def _two_phase(o: OptimizerSection, lr: optax.Schedule, transfer: TransferSection,
               steps_per_epoch: int) -> optax.GradientTransformation:
    """The optimiser twice, over a partition: the head follows `lr`, then
    ``finetune_lr_scale`` x `lr` from step ``head_epochs x steps_per_epoch``; the base has a
    learning rate of exactly 0 before that step (its parameters do not move: every
    optimiser here scales its update by the rate) and the head's after it."""
    head_steps = int(round(transfer.phases.head_epochs * steps_per_epoch))
    scale = transfer.phases.finetune_lr_scale

    def head_lr(count):
        return jnp.where(count < head_steps, 1.0, scale) * lr(count)

    def base_lr(count):
        return jnp.where(count < head_steps, 0.0, scale) * lr(count)

    def labels(params):
        return jax.tree_util.tree_map_with_path(
            lambda path, _: BASE if transfer.is_base(path_string(path)) else HEAD, params)

    return optax.multi_transform({HEAD: OPTIMIZERS.get(o.name)(o, head_lr),
                                  BASE: OPTIMIZERS.get(o.name)(o, base_lr)}, labels)


def current_learning_rate(optimizer: OptimizerSection, schedule: ScheduleSection,
                          steps_per_epoch: int, total_steps: int, step: int,
                          opt_state=None) -> float:
    """The learning rate in effect at `step`, including a plateau reduction."""
    lr = float(learning_rate_schedule(optimizer, schedule, steps_per_epoch, total_steps)(step))
    if opt_state is not None and schedule.name == "plateau":
        states = jax.tree_util.tree_leaves(
            opt_state, is_leaf=lambda x: isinstance(x, optax.contrib.ReduceLROnPlateauState))
        for st in states:
            if isinstance(st, optax.contrib.ReduceLROnPlateauState):
                lr *= float(st.scale)
    return lr


def total_train_steps(num_epochs: float, num_steps: int, steps_per_epoch: int) -> int:
    """`num_steps` when positive, else `num_epochs` worth of steps."""
    if num_steps > 0:
        return int(num_steps)
    return int(math.ceil(num_epochs * steps_per_epoch))
