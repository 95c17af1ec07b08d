"""What every task gives the trainer, how a task registers itself, and the pieces tasks share.

The `Task` protocol is all the loop calls, so adding a task never touches it:

- `loss(outputs, batch) -> (scalar loss, metric sums)` inside the jitted train step;
- `eval_outputs(outputs, batch) -> pytree` inside the jitted eval step (sums, or
  per-example results such as decoded boxes);
- `new_accumulator()` whose `add(eval_outputs)` collects a split on the host;
- `summarize(accumulator or sums) -> {metric: float}`;
- `write_report(accumulator, out_dir, prefix)` at the end of a run;
- `draws_examples` / `write_examples(batch, outputs, out_dir, prefix)`: pictures of a few
  eval images (host arrays, normalised as fed) with their predictions; the loop runs the
  prediction for them only when `draws_examples` is true;
- `write_predictions(images, outputs, names, out_dir)` for `vision_jax.predict`;
- `example_spec()`: how the data pipeline builds this task's batches (a task knows it from
  the options it was created with).

Batches always carry "image" (float32 NHWC) and, in evaluation, "mask" (1 for a
real example, 0 for padding); targets use other keys.

Adding a task: a module defines its options as a frozen dataclass section (fields with
`vision_jax.sections.option`, checks beside them) and registers a `TaskEntry` in
`vision_jax.tasks.TASKS`::

    @dataclasses.dataclass(frozen=True)
    class CountingOptions:
        max_count: int = option(10, "largest count predicted", check=positive)

    def _create(options, *, num_classes, info, data, model) -> CountingTask:
        return CountingTask(options.max_count)

    TASKS.register("counting", TaskEntry(create=_create, options=CountingOptions,
                                         group="counting"))

and adds its module to `TASKS`'s lazy module list in `vision_jax/tasks/__init__.py` (and an
empty ``config.counting`` group to `vision_jax.training.defaults.default_config`). The
options are read from ``config.<group>``, built once when the run is parsed, and handed to
`create` with explicit arguments: the number of classes, the dataset's `DatasetInfo`, the
`DataSection` and the `ModelSection` (the model's name and checked options); `check` sees
the options with the sections they must agree with, before anything reads the data. A
group set for a task other than ``config.task`` is an error naming its first field. The
task never sees the ConfigDict.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np


@runtime_checkable
class Task(Protocol):
    """The contract between a task and the training loop (see the module docstring)."""

    draws_examples: bool

    def loss(self, outputs: Any, batch: dict) -> tuple[jax.Array, dict]: ...

    def eval_outputs(self, outputs: Any, batch: dict) -> Any: ...

    def new_accumulator(self) -> Any: ...

    def summarize(self, sums: Any) -> dict[str, float]: ...

    def write_report(self, accumulator: Any, out_dir: str, prefix: str = "eval") -> Any: ...

    def write_examples(self, batch: dict, outputs: Any, out_dir: str,
                       prefix: str = "eval") -> None: ...

    def write_predictions(self, images: Any, outputs: Any, names: list[str],
                          out_dir: str) -> list[dict]: ...

    def example_spec(self) -> Any: ...


@dataclasses.dataclass(frozen=True)
class TaskEntry:
    """How a task is built from a parsed config.

    create: ``create(options, *, num_classes, info, data, model) -> Task``; `options` is
      the built options section (None when the task declares none), `info` the dataset's
      `DatasetInfo`, `data` the `DataSection`, `model` the `ModelSection` (``model_name``,
      ``num_classes``, ``dtype``, ``kwargs``). Raise `ConfigError` for a mismatch with the
      dataset (e.g. its class count).
    options: the frozen dataclass of the task's options, or None.
    group: the config group its options come from (``config.segmentation``); None reads
      each options field from the config's top level (``config.label_smoothing``).
    check: ``check(options, *, num_classes, augment, model) -> None``, for rules that
      involve other sections (`augment` the `AugmentSection`; `model` the `ModelSection`,
      whose ``config.model`` options are checked against the model right after); raises
      `ConfigError`.
    """

    create: Callable[..., Task]
    options: type | None = None
    group: str | None = None
    check: Callable[..., None] | None = None


class SumAccumulator:
    """Adds metric sums batch by batch. The additions stay on device (asynchronous);
    `result()` fetches the totals once."""

    def __init__(self):
        self._totals = None

    def add(self, sums) -> None:
        self._totals = sums if self._totals is None else jax.tree.map(
            lambda a, b: a + b, self._totals, sums)

    def result(self) -> dict:
        if self._totals is None:
            raise ValueError("no batches were evaluated")
        return jax.tree.map(np.asarray, jax.device_get(self._totals))
