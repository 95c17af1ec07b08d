"""The block a run prints before its first step: what runs where, on what, and where it writes.

A run used to print nothing until its first log line, minutes later on a big model; this
says, once and compactly, the devices and mesh, the dataset's splits, the model's size, the
length and cadences, and the outputs, so a wrong setting shows before time is spent.
"""

from __future__ import annotations

import math
from typing import Any

import jax


def _count(n: int | float) -> str:
    return f"{n:,}"


def parameter_count(tree: Any) -> int:
    """Elements of every array (or ShapeDtypeStruct) in `tree`."""
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def summary_lines(exp: Any) -> list[str]:
    """The lines of the block for experiment `exp` (a `training.loop.Experiment`)."""
    run, info = exp.run, exp.info
    devices = jax.devices()
    mesh = ", ".join(f"{axis}={size}" for axis, size in exp.mesh.shape.items())
    processes = f", {jax.process_count()} processes" if jax.process_count() > 1 else ""
    sizes = getattr(info, "split_sizes", {}) or {}
    splits = ", ".join(f"{name} {_count(sizes[name])}" if name in sizes else name
                       for name in dict.fromkeys((run.data.train_split, run.data.eval_split)))
    shapes = exp.traced_init.shapes
    params = parameter_count(shapes.params)
    stats = parameter_count(shapes.batch_stats) if shapes.batch_stats else 0
    stats_text = f" + {_count(stats)} batch-norm statistics" if stats else ""
    resume = exp.checkpointer.latest_step()
    start = f", resuming at step {resume}" if resume is not None else ""
    epochs = exp.total_steps / exp.steps_per_epoch
    every = run.loop
    return [
        f"devices  {len(devices)} x {devices[0].device_kind} ({devices[0].platform}"
        f"{processes}); mesh {mesh}; strategy {run.sharding.strategy}",
        f"data     {run.data.dataset}: {splits}; batch {run.data.batch_size} "
        f"({exp.steps_per_epoch} steps/epoch)",
        f"model    {run.model.model_name}, task {run.task}: {_count(params)} parameters"
        f"{stats_text}; compute {run.model.dtype}",
        f"length   {exp.total_steps} steps ({epochs:.3g} epochs){start}; log every "
        f"{every.log_every_steps}, eval every {every.eval_every_steps or exp.steps_per_epoch}, "
        f"checkpoint every {every.checkpoint_every_steps or exp.steps_per_epoch} steps",
        f"outputs  {exp.workdir} (metrics.jsonl, tensorboard/, checkpoints/, reports)",
    ]


def print_run_summary(exp: Any) -> None:
    """Prints the block on the main process (stdout, like the run's other messages)."""
    if exp.is_main:
        print("\n".join(summary_lines(exp)), flush=True)
