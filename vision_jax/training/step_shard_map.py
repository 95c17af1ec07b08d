"""The `shard_map` strategy: the train, eval and predict steps written per device.

This is the explicit style of `pmap` code. Each device runs the step on its own
slice of the batch (split over every batch axis of the mesh) with a full copy
of the parameters; gradients are averaged with `pmean`, metric sums added with
`psum`, and batch norm averages its mean and mean of squares across devices,
which gives exactly the statistics of the global batch.

Equivalence with the `jit` strategy holds when the task's loss is a mean over
examples (every device holds the same number of them): the mean of the
per-device gradients is then the gradient of the global mean. Dropout masks are
drawn per example from the row's stream index (`step.per_example_dropout`), and the
augmentation runs on the global batch before the per-device step, so both
strategies draw the same masks and the same augmentations.

Parameters stay replicated here (`config.mesh.fsdp` must be 1): sharding them
is the `jit` strategy's job.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import optax
from jax.sharding import Mesh
from jax.sharding import PartitionSpec as P

from vision_jax.augment import PLAIN, DevicePreprocess
from vision_jax.models.layers import batch_norm_across
from vision_jax.parallel.mesh import BATCH_AXES
from vision_jax.training import step
from vision_jax.training.state import TrainState


def _per_device_train_step(state: TrainState, batch: dict, rng: jax.Array, *, model: nn.Module,
                           tx: optax.GradientTransformationExtraArgs, task,
                           axes: tuple[str, ...]) -> tuple[TrainState, dict]:
    step_rng = jax.random.fold_in(rng, state.step)
    loss_fn = step.loss_function(state, batch, step_rng, model=model, task=task)
    # Marked per-device, the replicated parameters get per-device gradients (this device's
    # loss only), which the explicit pmean turns into the gradient of the global mean loss.
    params = jax.lax.pcast(state.params, axes, to="varying")
    with batch_norm_across(axes):  # read while the model is traced, inside value_and_grad
        (loss, (sums, updates)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    grads = jax.lax.pmean(grads, axes)
    loss = jax.lax.pmean(loss, axes)
    sums = jax.lax.psum(sums, axes)
    return step.apply_gradients(state, grads, loss, updates, tx), sums


def _per_example_leaves(eval_step, state: TrainState, local_batch: dict) -> list:
    """Which leaves of the task's eval outputs are per example (their leading dimension
    follows the batch) rather than sums: found by shape inference at two batch sizes."""

    def shapes(scale):
        batch = {k: jax.ShapeDtypeStruct((v.shape[0] * scale, *v.shape[1:]), v.dtype)
                 for k, v in local_batch.items()}
        return jax.eval_shape(eval_step, state, batch)

    one, two = shapes(1), shapes(2)
    return jax.tree.map(lambda a, b: bool(a.shape) and a.shape[0] != b.shape[0], one, two)


def _local_shapes(batch: dict, parts: int) -> dict:
    return {k: jax.ShapeDtypeStruct((v.shape[0] // parts, *v.shape[1:]), v.dtype)
            for k, v in batch.items()}


def shard_map_steps(model: nn.Module, tx, task, mesh: Mesh, replicated, batch_sharding,
                    preprocess: DevicePreprocess = PLAIN):
    """The train, eval and predict steps of the `shard_map` strategy, jitted.

    Same signatures and results as `step.jit_steps` (state replicated, batch split). The
    augmentation and normalisation run on the global batch (GSPMD splits them by rows)
    before the per-device step.
    """
    axes = tuple(a for a in BATCH_AXES if a in mesh.axis_names)
    parts = math.prod(mesh.shape[axis] for axis in axes)
    split = P(axes)

    per_device_train = jax.shard_map(
        functools.partial(_per_device_train_step, model=model, tx=tx, task=task, axes=axes),
        mesh=mesh, in_specs=(P(), split, P()), out_specs=(P(), P()))

    def train(state: TrainState, batch: dict, rng: jax.Array):
        batch = jax.lax.with_sharding_constraint(preprocess.train(batch, rng), batch_sharding)
        return per_device_train(state, batch, rng)

    train = jax.jit(train, in_shardings=(replicated, batch_sharding, replicated),
                    out_shardings=(replicated, replicated), donate_argnums=(0,))

    eval_step = functools.partial(step.eval_step, model=model, task=task, preprocess=preprocess)

    def evaluate(state: TrainState, batch: dict):
        per_example = _per_example_leaves(eval_step, state, _local_shapes(batch, parts))

        def per_device(state, batch):
            results = eval_step(state, batch)
            return jax.tree.map(lambda r, keep: r if keep else jax.lax.psum(r, axes),
                                results, per_example)

        out_specs = jax.tree.map(lambda keep: split if keep else P(), per_example)
        return jax.shard_map(per_device, mesh=mesh, in_specs=(P(), split),
                             out_specs=out_specs)(state, batch)

    def predict(state: TrainState, images: jax.Array):
        return jax.shard_map(
            functools.partial(step.predict_step, model=model, preprocess=preprocess),
            mesh=mesh, in_specs=(P(), split), out_specs=split)(state, images)

    # Eval outputs are replicated, as `step.jit_steps` gives them: accumulators of
    # per-example results (detection) read every image on every process.
    evaluate = jax.jit(evaluate, in_shardings=(replicated, batch_sharding),
                       out_shardings=replicated)
    predict = jax.jit(predict, in_shardings=(replicated, batch_sharding))
    return train, evaluate, predict
