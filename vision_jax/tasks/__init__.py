"""The task registry: a task supplies the loss, the metrics and the reports.

`TASKS` maps ``config.task`` to a `TaskEntry` (its options section and its factory; see
`vision_jax.tasks.base`, which also defines the `Task` protocol the loop calls). Task
modules register themselves when `TASKS` first looks a name up.
"""

from __future__ import annotations

from typing import Any

from vision_jax.registry import Registry
from vision_jax.tasks.base import Task, TaskEntry

TASKS: Registry[TaskEntry] = Registry(
    "task", field="config.task",
    modules=["vision_jax.tasks.classification", "vision_jax.tasks.segmentation",
             "vision_jax.tasks.multilabel", "vision_jax.tasks.verification"])


def _create_detection(config: Any, info: Any) -> Task:
    from vision_jax.tasks.detection import create_detection_task

    return create_detection_task(config, info)


def _validate_detection(config: Any) -> None:
    from vision_jax.tasks.detection import validate_detection_config

    validate_detection_config(config)


# Detection still reads the whole ConfigDict (its own hooks); it moves onto an options
# section with the detector split.
TASKS.register("detection", TaskEntry(from_config=_create_detection,
                                      validate_config=_validate_detection, group="detection"))


def names() -> list[str]:
    return TASKS.names()


__all__ = ["TASKS", "Task", "TaskEntry", "names"]
