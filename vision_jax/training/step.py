"""The jitted train and eval steps: pure functions of (state, batch, rng).

They are written for the global batch; how it is split over devices is the
business of the shardings the loop passes to `jax.jit`. Batches arrive as the input
pipeline makes them (uint8 images); the steps augment (train) and normalise on device
through a `vision_jax.augment.DevicePreprocess`. Every random draw is keyed per example by
the row's stream ``index``: augmentation, and dropout (`per_example_dropout`), so a row gets
the same masks whatever the device count or the sharding strategy.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from vision_jax.augment import PLAIN, DevicePreprocess, example_index
from vision_jax.training.state import TrainState


def per_example_dropout(index: jax.Array):
    """A Flax method interceptor: every `nn.Dropout` draws row i's mask from its own key
    folded with ``index[i]`` instead of one mask for the whole batch, so a row's mask does
    not depend on which device holds it or how many rows that device has."""

    def interceptor(next_fun, args, kwargs, context):
        module = context.module
        if not isinstance(module, nn.Dropout) or context.method_name != "__call__":
            return next_fun(*args, **kwargs)
        inputs = args[0]
        deterministic = nn.merge_param("deterministic", module.deterministic,
                                       kwargs.get("deterministic", args[1] if len(args) > 1
                                                  else None))
        if module.rate == 0.0 or deterministic:
            return inputs
        if module.rate == 1.0:
            return jnp.zeros_like(inputs)
        keep = 1.0 - module.rate
        key = kwargs.get("rng")
        if key is None:
            key = module.make_rng(module.rng_collection)
        shape = [1 if d in module.broadcast_dims else n
                 for d, n in enumerate(inputs.shape)][1:]
        keys = jax.vmap(jax.random.fold_in, (None, 0))(key, index)
        mask = jax.vmap(lambda k: jax.random.bernoulli(k, keep, shape))(keys)
        mask = jnp.broadcast_to(mask, inputs.shape)
        return jax.lax.select(mask, inputs / keep, jnp.zeros_like(inputs))

    return interceptor


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
        with nn.intercept_methods(per_example_dropout(example_index(batch))):
            outputs, updates = model.apply(
                variables, batch["image"], train=True,
                mutable=["batch_stats"] if has_bn else [], rngs={"dropout": dropout_rng})
        if activation_sharding is not None:
            outputs = jax.lax.with_sharding_constraint(outputs, activation_sharding)
        loss, sums = task.loss(outputs, batch)
        if "mix_label" in batch:  # mixup / cutmix: the loss is linear in the target
            weight = batch["mix_weight"][0]
            mixed_loss, mixed_sums = task.loss(outputs, {**batch, "label": batch["mix_label"]})
            loss = weight * loss + (1 - weight) * mixed_loss
            sums = jax.tree.map(lambda a, b: weight * a + (1 - weight) * b, sums, mixed_sums)
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
    preprocess: DevicePreprocess = PLAIN,
    activation_sharding: jax.sharding.Sharding | None = None,
) -> tuple[TrainState, dict]:
    """One optimiser step on a raw batch. Returns the new state and metric *sums*."""
    batch = preprocess.train(batch, rng)
    # A fresh key per step, derived from the step number so a resumed run
    # draws exactly the dropout masks an uninterrupted one would.
    step_rng = jax.random.fold_in(rng, state.step)
    loss_fn = loss_function(state, batch, step_rng, model=model, task=task,
                            activation_sharding=activation_sharding)
    (loss, (sums, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return apply_gradients(state, grads, loss, updates, tx), sums


def eval_step(state: TrainState, batch: dict, *, model: nn.Module, task,
              preprocess: DevicePreprocess = PLAIN) -> dict:
    """The task's eval outputs (metric sums, decoded predictions) for one padded raw batch."""
    batch = preprocess.eval(batch)
    outputs = model.apply(state.variables(), batch["image"], train=False)
    return task.eval_outputs(outputs, batch)


def predict_step(state: TrainState, images: jax.Array, *, model: nn.Module,
                 preprocess: DevicePreprocess = PLAIN) -> jax.Array:
    """The model's outputs for raw (uint8) images."""
    return model.apply(state.variables(), preprocess.normalize(images), train=False)


def jit_steps(model, tx, task, state_sharding, batch_sharding, replicated,
              preprocess: DevicePreprocess = PLAIN):
    """The three steps jitted with explicit input/output shardings (the `jit` strategy)."""
    train = jax.jit(
        functools.partial(train_step, model=model, tx=tx, task=task, preprocess=preprocess,
                          activation_sharding=batch_sharding),
        in_shardings=(state_sharding, batch_sharding, replicated),
        out_shardings=(state_sharding, replicated),
        donate_argnums=(0,),
    )
    evaluate = jax.jit(
        functools.partial(eval_step, model=model, task=task, preprocess=preprocess),
        in_shardings=(state_sharding, batch_sharding),
        out_shardings=replicated,
    )
    predict = jax.jit(functools.partial(predict_step, model=model, preprocess=preprocess),
                      in_shardings=(state_sharding, batch_sharding))
    return train, evaluate, predict
