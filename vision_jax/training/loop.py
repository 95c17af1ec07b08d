"""The training loop: data → jitted step → logging, evaluation, checkpoints.

It knows nothing about which task or model it runs; those come from the
registries. Everything here is identical on one CPU, many devices and many
processes: the mesh and the shardings carry the difference.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

from vision_jax import augment as augment_lib
from vision_jax import data as data_lib
from vision_jax import tasks
from vision_jax.ops.kernel_choices import record_kernel_choices, stop_recording
from vision_jax.parallel import mesh as mesh_lib
from vision_jax.parallel import sharding_rules
from vision_jax.training import optimizer as optimizer_lib
from vision_jax.training import validate
from vision_jax.training.checkpoint import Checkpointer
from vision_jax.training.defaults import default_config
from vision_jax.training.logging import MetricWriter, Progress
from vision_jax.training.state import TrainState, init_train_state
from vision_jax.training.step import jit_steps
from vision_jax.training.step_shard_map import shard_map_steps

CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass
class Experiment:
    """Everything built from a config before the first step runs."""

    config: ml_collections.ConfigDict
    workdir: str
    info: Any
    mesh: jax.sharding.Mesh
    model: Any
    task: Any
    tx: Any
    steps_per_epoch: int
    total_steps: int
    abstract_state: TrainState  # shapes, dtypes and shardings of the state
    checkpointer: Checkpointer
    train_step: Any
    eval_step: Any
    predict_step: Any

    @property
    def is_main(self) -> bool:
        return jax.process_index() == 0

    def global_batch(self, local: dict) -> dict:
        """This process's slice of the batch → one global array per key, sharded on `data`."""
        sharding = mesh_lib.batch_sharding(self.mesh)
        return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
                for k, v in local.items()}


def build_experiment(config: ml_collections.ConfigDict, workdir: str) -> Experiment:
    """Validates the config against devices, data and model, then builds the run.

    Nothing is compiled until every check has passed.
    """
    validate.validate_config(config)
    try:
        info = data_lib.validate_data_config(config, jax.process_count())
    except (ValueError, FileNotFoundError) as e:  # the data layer's one-line messages
        raise validate.ConfigError(str(e)) from None
    validate.validate_against_data(config, info)

    mesh = mesh_lib.make_mesh(config.mesh)
    model = validate.build_model(config)
    try:
        task = tasks.create(config, info)
    except ValueError as e:  # a task's check of the config against the dataset
        raise validate.ConfigError(str(e)) from None
    train_size = info.split_sizes.get(config.train_split)
    if train_size is None:  # a TFDS slice such as "train[:90%]"
        train_size = len(data_lib.open_source(config.dataset, config.train_split,
                                              data_dir=config.data_dir or None)[0])
    steps_per_epoch = max(train_size // config.batch_size, 1)
    total_steps = optimizer_lib.total_train_steps(config, steps_per_epoch)
    tx = optimizer_lib.create_optimizer(config, steps_per_epoch, total_steps)

    image_shape = (config.image_size, config.image_size, validate.image_channels(config, info))
    shapes = jax.eval_shape(
        functools.partial(init_train_state, model, tx, image_shape=image_shape),
        jax.random.key(0))
    state_sharding = _state_sharding(config, shapes, mesh)
    abstract_state = jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh), shapes, state_sharding)
    batch, replicated = mesh_lib.batch_sharding(mesh), mesh_lib.replicated(mesh)
    preprocess = augment_lib.device_preprocess(config, task.example_spec(config))
    if config.sharding.strategy == "shard_map":
        train_step, eval_step, predict_step = shard_map_steps(
            model, tx, task, mesh, replicated, batch, preprocess)
    else:
        train_step, eval_step, predict_step = jit_steps(
            model, tx, task, state_sharding, batch, replicated, preprocess)
    checkpointer = Checkpointer(os.path.join(workdir, CHECKPOINT_DIR), keep=config.keep_checkpoints)
    return Experiment(config, workdir, info, mesh, model, task, tx, steps_per_epoch, total_steps,
                      abstract_state, checkpointer, train_step, eval_step, predict_step)


def _state_sharding(config: ml_collections.ConfigDict, shapes: TrainState,
                    mesh: jax.sharding.Mesh) -> TrainState:
    """Where each state array lives: replicated for `shard_map` (plain data parallelism),
    by the FSDP rules and `config.sharding.rules` for `jit`."""
    if config.sharding.strategy == "shard_map":
        return jax.tree.map(lambda _: mesh_lib.replicated(mesh), shapes)
    try:
        return sharding_rules.state_shardings(
            shapes, mesh, config.sharding.fsdp_min_size, config.sharding.rules)
    except ValueError as e:  # a rule or the fsdp size against the model's shapes
        raise validate.ConfigError(str(e)) from None


def init_state(exp: Experiment, rng: jax.Array) -> TrainState:
    """Fresh parameters, created directly with their final shardings."""
    c = exp.config
    image_shape = (c.image_size, c.image_size, validate.image_channels(c, exp.info))
    init = functools.partial(init_train_state, exp.model, exp.tx, image_shape=image_shape)
    shardings = jax.tree.map(lambda s: s.sharding, exp.abstract_state)
    return jax.jit(init, out_shardings=shardings)(rng)


def evaluate(exp: Experiment, state: TrainState, split: str | None = None):
    """The task's accumulator over the whole split, every example counted exactly once."""
    split = split or exp.config.eval_split
    batches = data_lib.make_eval_iterator(
        exp.config, exp.info, split, process_index=jax.process_index(),
        process_count=jax.process_count(), spec=exp.task.example_spec(exp.config))
    accumulator = exp.task.new_accumulator()
    for local in batches:
        accumulator.add(exp.eval_step(state, exp.global_batch(local)))
    return accumulator


def write_examples(exp: Experiment, state: TrainState, out_dir: str, prefix: str = "eval",
                   count: int = 8) -> None:
    """Pictures of the first eval images with their predictions (task-specific)."""
    batches = data_lib.make_eval_iterator(
        exp.config, exp.info, process_index=jax.process_index(),
        process_count=jax.process_count(), spec=exp.task.example_spec(exp.config))
    local = next(iter(batches))
    outputs = exp.predict_step(state, exp.global_batch({"image": local["image"]})["image"])
    # Every process takes part in the gather; only the main one draws.
    outputs = multihost_utils.process_allgather(outputs, tiled=True)
    if exp.is_main:
        first = {k: np.asarray(v)[:count] for k, v in local.items()}
        first["image"] = augment_lib.normalize(first["image"], exp.config.normalize.mean,
                                               exp.config.normalize.std)
        outputs = jax.tree.map(lambda x: np.asarray(x)[:count], outputs)
        exp.task.write_examples(first, outputs, out_dir, prefix)


class _StopSignal:
    """Turns SIGTERM into a flag the loop polls, so the step in flight finishes
    and a checkpoint is written before the process exits."""

    def __init__(self):
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        logging.warning("SIGTERM received: saving a checkpoint and stopping")
        self.requested = True

    def should_stop(self, step: int, sync_every: int) -> bool:
        if jax.process_count() == 1:
            return self.requested
        if step % sync_every:
            return False
        # Every process must agree, or the ones that continue would hang in collectives;
        # agreeing costs a collective, so it is done only every `sync_every` steps.
        return bool(np.any(multihost_utils.process_allgather(np.array(self.requested))))

    def restore(self):
        signal.signal(signal.SIGTERM, self._previous)


def _write_config(config: ml_collections.ConfigDict, workdir: str) -> None:
    with open(os.path.join(workdir, "config.json"), "w") as f:
        f.write(config.to_json_best_effort(indent=2, sort_keys=True) + "\n")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, float]:
    """Trains (resuming from the workdir's latest checkpoint), evaluates and writes
    the reports. Returns the final eval metrics."""
    workdir = os.path.abspath(workdir)
    exp = build_experiment(config, workdir)
    if exp.is_main:
        os.makedirs(workdir, exist_ok=True)
        _write_config(config, workdir)
    record_kernel_choices(os.path.join(workdir, "kernels.json"), write=exp.is_main)
    writer = MetricWriter(workdir, enabled=exp.is_main)

    init_rng, train_rng = jax.random.split(jax.random.key(config.seed))
    train_iter = data_lib.make_train_iterator(
        config, exp.info, process_index=jax.process_index(), process_count=jax.process_count(),
        spec=exp.task.example_spec(config))
    if exp.checkpointer.latest_step() is not None:
        state, data_state = exp.checkpointer.restore(exp.abstract_state)
        train_iter.set_state(data_state)
        if exp.is_main:
            print(f"resuming from the checkpoint at step {int(state.step)}", flush=True)
    else:
        state = init_state(exp, init_rng)
    start = int(jax.device_get(state.step))
    writer.truncate_after(start)

    eval_every = config.eval_every_steps or exp.steps_per_epoch
    ckpt_every = config.checkpoint_every_steps or exp.steps_per_epoch
    progress = Progress(exp.total_steps, start, config.batch_size, enabled=exp.is_main,
                        show_bar=config.progress_bar)
    stop = _StopSignal()
    pending: list[dict] = []
    eval_metrics: dict[str, float] = {}
    try:
        for step in range(start + 1, exp.total_steps + 1):
            batch = exp.global_batch(next(train_iter))
            state, sums = exp.train_step(state, batch, train_rng)
            pending.append(sums)
            last = step == exp.total_steps
            if step % config.log_every_steps == 0 or last:
                train = _mean_metrics(exp.task, pending, "train")
                pending = []
                train["train/learning_rate"] = optimizer_lib.current_learning_rate(
                    config, exp.steps_per_epoch, exp.total_steps, step - 1, state.opt_state)
                writer.write(step, train)
                rate = progress.update(step, {"train/loss": train["train/loss"]})
                writer.write_perf(step, {"perf/images_per_sec": rate})
            if step % eval_every == 0 or last:
                eval_metrics = _prefixed(exp.task.summarize(evaluate(exp, state)), "eval")
                writer.write(step, eval_metrics)
                progress.write(f"step {step}: " + ", ".join(
                    f"{k}={v:.4f}" for k, v in eval_metrics.items()))
            stopping = stop.should_stop(step, config.log_every_steps)
            if step % ckpt_every == 0 or last or stopping:
                exp.checkpointer.save(state, train_iter.get_state())
            if stopping and not last:
                exp.checkpointer.wait()
                progress.write(f"stopped at step {step} on SIGTERM; the same command resumes")
                return eval_metrics
        final = evaluate(exp, state)
        write_examples(exp, state, workdir)
        if exp.is_main:
            exp.task.write_report(final, workdir)
            _plot_curves(workdir)
        return _prefixed(exp.task.summarize(final), "eval")
    finally:
        stop_recording()
        stop.restore()
        progress.close()
        exp.checkpointer.close()
        writer.close()


def _mean_metrics(task, pending: list[dict], prefix: str) -> dict[str, float]:
    totals = jax.device_get(functools.reduce(
        lambda a, b: jax.tree.map(lambda x, y: x + y, a, b), pending))
    return _prefixed(task.summarize(totals), prefix)


def _prefixed(metrics: dict[str, float], prefix: str) -> dict[str, float]:
    return {f"{prefix}/{k}": float(v) for k, v in metrics.items()}


def _plot_curves(workdir: str) -> None:
    from vision_jax.viz.training_curves import plot_training_curves

    try:
        plot_training_curves(os.path.join(workdir, "metrics.jsonl"),
                             os.path.join(workdir, "training_curves.png"))
    except Exception as e:  # noqa: BLE001 - a plot must never fail a finished run
        logging.warning("could not plot training curves: %s", e)


def restore_experiment(workdir: str) -> tuple[Experiment, TrainState]:
    """The experiment a finished (or interrupted) run describes, at its latest checkpoint."""
    exp = build_experiment(load_workdir_config(workdir), workdir)
    state, _ = exp.checkpointer.restore(exp.abstract_state)
    exp.checkpointer.close()
    return exp, state


def load_workdir_config(workdir: str) -> ml_collections.ConfigDict:
    path = os.path.join(workdir, "config.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: --workdir must be a directory a training "
                                "run wrote")
    with open(path) as f:
        config = ml_collections.ConfigDict(json.load(f))
    if "sharding" not in config:  # written before config.sharding existed: its defaults
        config.sharding = default_config().sharding
    return config

