"""The training loop: data → jitted step → logging, evaluation, checkpoints.

It knows nothing about which task or model it runs; those come from the
registries, and the config arrives parsed into typed sections (`run_config.py`).
Everything here is identical on one CPU, many devices and many processes: the mesh
and the shardings carry the difference.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import signal
import sys
from typing import Any

import jax
import ml_collections
import numpy as np
from absl import logging
from etils import epath
from jax.experimental import multihost_utils

from vision_jax import augment as augment_lib
from vision_jax import data as data_lib
from vision_jax import paths
from vision_jax.data import scan, skipped
from vision_jax.errors import ConfigError, StoppedBySignal
from vision_jax.ops.kernel_choices import record_kernel_choices, stop_recording
from vision_jax.parallel import mesh as mesh_lib
from vision_jax.parallel import sharding_rules
from vision_jax.tasks import TASKS, Task
from vision_jax.training import optimizer as optimizer_lib
from vision_jax.training import validate
from vision_jax.training.checkpoint import Checkpointer
from vision_jax.training.config_guard import check_workdir
from vision_jax.training.evaluators import Evaluator, build_evaluators
from vision_jax.training.logging import MetricWriter, Progress
from vision_jax.training.run_config import RunConfig, ShardingSection
from vision_jax.training.run_summary import print_run_summary
from vision_jax.training.state import TracedInit, TrainState
from vision_jax.training.step import jit_steps
from vision_jax.training.step_shard_map import shard_map_steps
from vision_jax.weights import init_from
from vision_jax.weights.frozen_norms import with_frozen_batch_norms

CHECKPOINT_DIR = "checkpoints"


@dataclasses.dataclass
class Experiment:
    """Everything built from a config before the first step runs."""

    config: ml_collections.ConfigDict  # as given: what config.json records
    run: RunConfig  # the typed sections every layer receives
    workdir: epath.Path
    info: Any
    mesh: jax.sharding.Mesh
    model: Any
    task: Task
    tx: Any
    steps_per_epoch: int
    total_steps: int
    abstract_state: TrainState  # shapes, dtypes and shardings of the state
    traced_init: TracedInit  # the model's init, traced once
    checkpointer: Checkpointer
    train_step: Any
    eval_step: Any
    predict_step: Any
    evaluators: list[Evaluator]

    @property
    def is_main(self) -> bool:
        return jax.process_index() == 0

    def global_batch(self, local: dict) -> dict:
        """This process's slice of the batch → one global array per key, sharded on `data`."""
        sharding = mesh_lib.batch_sharding(self.mesh)
        return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
                for k, v in local.items()}


def build_experiment(config: ml_collections.ConfigDict, workdir: paths.PathLike) -> Experiment:
    """Parses the config into sections, checks them against devices, data and model, then
    builds the run: the model once, its init traced once. Nothing is compiled until every
    check has passed."""
    run = validate.validate_config(config)
    try:
        info = data_lib.validate_data_config(run.data, jax.process_count())
    except ConfigError:
        raise
    except (ValueError, FileNotFoundError) as e:  # the data layer's one-line messages
        raise ConfigError(str(e)) from None
    task = create_task(run, info)
    try:  # image + annotation files through the task's own decoding, before compiling
        scan.scan_examples(run.data, task.example_spec())
    except ValueError as e:
        raise ConfigError(str(e)) from None

    train_size = info.split_sizes.get(run.data.train_split)
    if train_size is None:  # a TFDS slice such as "train[:90%]"
        train_size = len(data_lib.open_source(run.data.dataset, run.data.train_split,
                                              data_dir=run.data.data_dir or None)[0])
    steps_per_epoch = max(train_size // run.data.batch_size, 1)
    total_steps = optimizer_lib.total_train_steps(run.loop.num_epochs, run.loop.num_steps,
                                                  steps_per_epoch)
    tx = optimizer_lib.create_optimizer(run.optimizer, run.schedule, steps_per_epoch,
                                        total_steps, run.transfer)
    model = with_frozen_batch_norms(validate.build_model(run), run.transfer)
    traced_init = validate.check_model_fits(run, model, tx, info)

    mesh = mesh_lib.make_mesh(run.mesh)
    state_sharding = _state_sharding(run.sharding, traced_init.shapes, mesh)
    abstract_state = jax.tree.map(
        lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
        traced_init.shapes, state_sharding)
    batch, replicated = mesh_lib.batch_sharding(mesh), mesh_lib.replicated(mesh)
    preprocess = augment_lib.device_preprocess(run.augment, run.data.normalize,
                                               task.example_spec())
    if run.sharding.strategy == "shard_map":
        train_step, eval_step, predict_step = shard_map_steps(
            model, tx, task, mesh, replicated, batch, preprocess)
    else:
        train_step, eval_step, predict_step = jit_steps(
            model, tx, task, state_sharding, batch, replicated, preprocess)
    workdir = paths.as_path(workdir)
    checkpointer = Checkpointer(workdir / CHECKPOINT_DIR, keep=run.loop.keep_checkpoints)
    evaluators = build_evaluators(run.data.eval_split, run.loop.eval_every_steps,
                                  steps_per_epoch)
    return Experiment(config, run, workdir, info, mesh, model, task, tx, steps_per_epoch,
                      total_steps, abstract_state, traced_init, checkpointer, train_step,
                      eval_step, predict_step, evaluators)


def create_task(run: RunConfig, info) -> Task:
    """The task `run.task` names, from its options section and explicit arguments."""
    entry = TASKS.get(run.task)
    try:
        return entry.create(run.task_options, num_classes=run.model.num_classes, info=info,
                            data=run.data, model=run.model)
    except ConfigError:
        raise
    except ValueError as e:  # a task's check of the config against the dataset
        raise ConfigError(str(e)) from None


def _state_sharding(sharding: ShardingSection, shapes: TrainState,
                    mesh: jax.sharding.Mesh) -> TrainState:
    """Where each state array lives: replicated for `shard_map` (plain data parallelism),
    by the FSDP rules and `config.sharding.rules` for `jit`."""
    if sharding.strategy == "shard_map":
        return jax.tree.map(lambda _: mesh_lib.replicated(mesh), shapes)
    try:
        return sharding_rules.state_shardings(shapes, mesh, sharding.fsdp_min_size,
                                              sharding.rules)
    except ValueError as e:  # a rule or the fsdp size against the model's shapes
        raise ConfigError(str(e)) from None


def init_state(exp: Experiment, rng: jax.Array) -> TrainState:
    """Fresh parameters, created directly with their final shardings (from the init traced
    when the experiment was built: the model's Python does not run again)."""
    shardings = jax.tree.map(lambda s: s.sharding, exp.abstract_state)
    return exp.traced_init.create(rng, shardings)


def train_iterator(exp: Experiment):
    """This process's resumable iterator of training batches, for the experiment's task."""
    return data_lib.make_train_iterator(
        exp.run.data, process_index=jax.process_index(), process_count=jax.process_count(),
        spec=exp.task.example_spec())


def eval_batches(exp: Experiment, split: str | None = None) -> data_lib.EvalBatches:
    """This process's padded eval batches of `split` (default: the eval split)."""
    return data_lib.make_eval_iterator(
        exp.run.data, split or exp.run.data.eval_split, process_index=jax.process_index(),
        process_count=jax.process_count(), spec=exp.task.example_spec())


def evaluate(exp: Experiment, state: TrainState, split: str | None = None):
    """The task's accumulator over the whole split, every example counted exactly once."""
    batches = eval_batches(exp, split)
    accumulator = exp.task.new_accumulator()
    for local in batches:
        accumulator.add(exp.eval_step(state, exp.global_batch(local)))
    return accumulator


def write_examples(exp: Experiment, state: TrainState, out_dir: epath.Path, prefix: str = "eval",
                   count: int = 8, split: str | None = None) -> None:
    """Pictures of the first eval images with their predictions (task-specific); nothing is
    predicted or gathered for a task that draws none."""
    if not getattr(exp.task, "draws_examples", True):
        return
    local = next(iter(eval_batches(exp, split)))
    outputs = exp.predict_step(state, exp.global_batch({"image": local["image"]})["image"])
    # Every process takes part in the gather; only the main one draws.
    outputs = multihost_utils.process_allgather(outputs, tiled=True)
    if exp.is_main:
        first = {k: np.asarray(v)[:count] for k, v in local.items()}
        normalize = exp.run.data.normalize
        first["image"] = augment_lib.normalize(first["image"], normalize.mean, normalize.std)
        outputs = jax.tree.map(lambda x: np.asarray(x)[:count], outputs)
        exp.task.write_examples(first, outputs, out_dir, prefix)


class _StopSignal:
    """Turns SIGTERM and SIGINT (Ctrl-C) into a flag the loop polls, so the step in flight
    finishes and a checkpoint is written; the loop then raises `StoppedBySignal` (entry points
    exit with 128 + the signal's number: 143, 130). A second Ctrl-C exits at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self):
        self.requested = False
        self.signum = signal.SIGTERM  # also what a peer's request is taken for
        self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            print("\nsecond Ctrl-C: exiting now, without the checkpoint", file=sys.stderr,
                  flush=True)
            os._exit(128 + signum)
        self.signum = signum
        logging.warning("%s received: saving a checkpoint and stopping%s", self.name,
                        " (Ctrl-C again exits at once)" if signum == signal.SIGINT else "")
        self.requested = True

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    def should_stop(self, step: int, sync_every: int) -> bool:
        if jax.process_count() == 1:
            return self.requested
        if step % sync_every:
            return False
        # Every process must agree, or the ones that continue would hang in collectives;
        # agreeing costs a collective, so it is done only every `sync_every` steps.
        return bool(np.any(multihost_utils.process_allgather(np.array(self.requested))))

    def restore(self):
        if self.requested:
            return  # the process is ending: a Ctrl-C during cleanup still exits at once
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)


def _write_config(config: ml_collections.ConfigDict, workdir: epath.Path) -> None:
    # The ConfigDict as given (not the sections): `load_workdir_config` reads it back.
    (workdir / "config.json").write_text(config.to_json_best_effort(indent=2, sort_keys=True)
                                         + "\n")


def _check_workdir_storage(workdir: epath.Path) -> None:
    """Unwritable storage is a one-line error before anything is built; a pod's hosts must
    share the workdir (they write shards of one checkpoint), so a local one gets a warning."""
    paths.check_writable(workdir, "--workdir")
    if jax.process_count() > 1 and not paths.is_remote(workdir):
        logging.warning(
            "--workdir=%s is a local path in a %d-process run: on a pod slice each host "
            "writes its shards of one checkpoint, so the workdir must be storage every host "
            "shares (gs://bucket/run); a local path works only where all processes share "
            "this disk", workdir, jax.process_count())


def train_and_evaluate(config: ml_collections.ConfigDict,
                       workdir: paths.PathLike) -> dict[str, float]:
    """Trains (resuming from the workdir's latest checkpoint), evaluates and writes
    the reports. Returns the final eval metrics; raises `StoppedBySignal` after the
    checkpoint a SIGTERM asked for."""
    workdir = paths.as_path(workdir)
    _check_workdir_storage(workdir)
    exp = build_experiment(config, workdir)
    check_workdir(config, workdir, resuming=exp.checkpointer.latest_step() is not None,
                  record=exp.is_main)
    print_run_summary(exp)
    if exp.is_main:
        _write_config(config, workdir)
    record_kernel_choices(workdir / "kernels.json", write=exp.is_main)
    writer = MetricWriter(workdir, enabled=exp.is_main)

    run = exp.run
    init_rng, train_rng = jax.random.split(jax.random.key(run.data.seed))
    train_iter = train_iterator(exp)
    if exp.checkpointer.latest_step() is not None:
        state, data_state = exp.checkpointer.restore(exp.abstract_state)
        train_iter.set_state(data_state)
        if exp.is_main:
            print(f"resuming from the checkpoint at step {int(state.step)}", flush=True)
    else:
        state = init_from.fresh_state(exp, init_rng)  # config.init_from, else init_state
    start = int(jax.device_get(state.step))
    writer.truncate_after(start)

    ckpt_every = run.loop.checkpoint_every_steps or exp.steps_per_epoch
    progress = Progress(exp.total_steps, start, run.data.batch_size, enabled=exp.is_main,
                        show_bar=run.loop.progress_bar)
    stop = _StopSignal()
    pending: list[dict] = []
    evaluate_split = functools.partial(evaluate, exp, state)
    try:
        for step in range(start + 1, exp.total_steps + 1):
            batch = exp.global_batch(next(train_iter))
            state, sums = exp.train_step(state, batch, train_rng)
            pending.append(sums)
            last = step == exp.total_steps
            if step % run.loop.log_every_steps == 0 or last:
                train = _mean_metrics(exp.task, pending, "train")
                pending = []
                train["train/learning_rate"] = optimizer_lib.current_learning_rate(
                    run.optimizer, run.schedule, exp.steps_per_epoch, exp.total_steps,
                    step - 1, state.opt_state)
                writer.write(step, train)
                rate = progress.update(step, {"train/loss": train["train/loss"]})
                writer.write_perf(step, {"perf/images_per_sec": rate})
            evaluate_split = functools.partial(evaluate, exp, state)
            for evaluator in exp.evaluators:
                if evaluator.due(step, exp.total_steps):
                    metrics = _prefixed(
                        exp.task.summarize(evaluator.run(step, evaluate_split)),
                        evaluator.prefix)
                    writer.write(step, metrics)
                    progress.write(f"step {step}: " + ", ".join(
                        f"{k}={v:.4f}" for k, v in metrics.items()))
            stopping = stop.should_stop(step, run.loop.log_every_steps)
            if step % ckpt_every == 0 or last or stopping:
                exp.checkpointer.save(state, train_iter.get_state())
            if stopping and not last:
                exp.checkpointer.wait()
                progress.write(f"stopped at step {step} on {stop.name}; the same command "
                               "resumes")
                raise StoppedBySignal(stop.signum, step)
        final_step = max(start, exp.total_steps)
        final: dict[str, float] = {}
        for evaluator in exp.evaluators:
            # The evaluation of the last step already ran; only a resumed, finished run
            # (no step taken here) evaluates now.
            result = evaluator.final(final_step, evaluate_split)
            final.update(_prefixed(exp.task.summarize(result), evaluator.prefix))
            if evaluator.reports:
                write_examples(exp, state, workdir, evaluator.prefix, split=evaluator.split)
                if exp.is_main:
                    exp.task.write_report(result, workdir, evaluator.prefix)
        if exp.is_main:
            _plot_curves(workdir)
        return final
    finally:
        stop_recording()
        skipped.report(workdir, jax.process_index())  # "skipped N bad files: ...", if any
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


def _plot_curves(workdir: epath.Path) -> None:
    from vision_jax.viz.training_curves import plot_training_curves

    try:
        plot_training_curves(workdir / "metrics.jsonl", workdir / "training_curves.png")
    except Exception as e:  # noqa: BLE001 - a plot must never fail a finished run
        logging.warning("could not plot training curves: %s", e)


def restore_experiment(workdir: paths.PathLike) -> tuple[Experiment, TrainState]:
    """The experiment a finished (or interrupted) run describes, at its latest checkpoint."""
    exp = build_experiment(load_workdir_config(workdir), workdir)
    state, _ = exp.checkpointer.restore(exp.abstract_state)
    exp.checkpointer.close()
    return exp, state


def load_workdir_config(workdir: paths.PathLike) -> ml_collections.ConfigDict:
    path = paths.as_path(workdir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: --workdir must be a directory a training "
                                "run wrote")
    return ml_collections.ConfigDict(json.loads(path.read_text()))

