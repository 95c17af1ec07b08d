"""The task registry: a task supplies the loss, the metrics and the reports.

`TASKS` maps ``config.task`` to a `TaskEntry` (its options section and its factory; see
`vision_jax.tasks.base`, which also defines the `Task` protocol the loop calls). Task
modules register themselves when `TASKS` first looks a name up.
"""

from __future__ import annotations

from vision_jax.registry import Registry
from vision_jax.tasks.base import Task, TaskEntry

TASKS: Registry[TaskEntry] = Registry(
    "task", field="config.task",
    modules=["vision_jax.tasks.classification", "vision_jax.tasks.segmentation",
             "vision_jax.tasks.detection", "vision_jax.tasks.multilabel",
             "vision_jax.tasks.verification"])


def names() -> list[str]:
    return TASKS.names()


__all__ = ["TASKS", "Task", "TaskEntry", "names"]
