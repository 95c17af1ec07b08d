"""The jitted train and eval steps: pure functions of (state, batch, rng).

They are written for the global batch; how it is split over devices is the
business of the shardings the loop passes to `jax.jit`.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import optax

from vision_jax.training.state import TrainState


def loss_function(state: TrainState, batch: dict, dropout_rng: jax.Array, *,
                  model: nn.Module, task,
                  activation_sharding: jax.sharding.Sharding | None = None):
    """``params -> (loss, (metric sums, batch-stat updates))`` on `batch`: what both
    strategies differentiate (`jit` on the global batch, `shard_map` per device).

    `activation_sharding` (the batch's) pins the model's outputs to a batch split: with
    FSDP-sharded kernels GSPMD could otherwise carry a parameter's split into the
    activations instead of gathering the parameter.
    """
    has_bn = bool(state.batch_stats)

    def loss_fn(params):
        variables = {"params": params}
        if has_bn:
            variables["batch_stats"] = state.batch_stats
        outputs, updates = model.apply(
            variables, batch["image"], train=True,
            mutable=["batch_stats"] if has_bn else [], rngs={"dropout": dropout_rng})
        if activation_sharding is not None:
            outputs = jax.lax.with_sharding_constraint(outputs, activation_sharding)
        loss, sums = task.loss(outputs, batch)
        return loss, (sums, updates)

    return loss_fn


def apply_gradients(state: TrainState, grads, loss: jax.Array, updates: dict,
                    tx: optax.GradientTransformationExtraArgs) -> TrainState:
    """The optimiser update (``loss`` feeds reduce-on-plateau) and the new batch stats."""
    param_updates, opt_state = tx.update(grads, state.opt_state, state.params, value=loss)
    return state.replace(
        step=state.step + 1,
        params=optax.apply_updates(state.params, param_updates),
        batch_stats=updates["batch_stats"] if state.batch_stats else state.batch_stats,
        opt_state=opt_state,
    )


def train_step(
    state: TrainState,
    batch: dict,
    rng: jax.Array,
    *,
    model: nn.Module,
    tx: optax.GradientTransformationExtraArgs,
    task,
    activation_sharding: jax.sharding.Sharding | None = None,
) -> tuple[TrainState, dict]:
    """One optimiser step. Returns the new state and metric *sums* over the batch."""
    # A fresh key per step, derived from the step number so a resumed run
    # draws exactly the dropout masks an uninterrupted one would.
    step_rng = jax.random.fold_in(rng, state.step)
    loss_fn = loss_function(state, batch, step_rng, model=model, task=task,
                            activation_sharding=activation_sharding)
    (loss, (sums, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return apply_gradients(state, grads, loss, updates, tx), sums


def eval_step(state: TrainState, batch: dict, *, model: nn.Module, task) -> dict:
    """The task's eval outputs (metric sums, decoded predictions) for one padded batch."""
    outputs = model.apply(state.variables(), batch["image"], train=False)
    return task.eval_outputs(outputs, batch)


def predict_step(state: TrainState, images: jax.Array, *, model: nn.Module) -> jax.Array:
    return model.apply(state.variables(), images, train=False)


def jit_steps(model, tx, task, state_sharding, batch_sharding, replicated):
    """The three steps jitted with explicit input/output shardings (the `jit` strategy)."""
    train = jax.jit(
        functools.partial(train_step, model=model, tx=tx, task=task,
                          activation_sharding=batch_sharding),
        in_shardings=(state_sharding, batch_sharding, replicated),
        out_shardings=(state_sharding, replicated),
        donate_argnums=(0,),
    )
    evaluate = jax.jit(
        functools.partial(eval_step, model=model, task=task),
        in_shardings=(state_sharding, batch_sharding),
        out_shardings=replicated,
    )
    predict = jax.jit(functools.partial(predict_step, model=model),
                      in_shardings=(state_sharding, batch_sharding))
    return train, evaluate, predict
