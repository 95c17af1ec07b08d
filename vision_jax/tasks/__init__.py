"""Task registry: a task supplies the loss, the metrics and the reports.

The training loop only calls `loss`, `eval_sums`, `summarize` and
`write_report`; it never branches on which task it runs.
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections

from vision_jax.tasks.classification import ClassificationTask
from vision_jax.tasks.detection import create_detection_task, validate_detection_config
from vision_jax.tasks.segmentation import create_segmentation_task, validate_segmentation_config


def _classification(config: ml_collections.ConfigDict, info) -> ClassificationTask:
    if info.num_classes and config.num_classes != info.num_classes:
        raise ValueError(
            f"config.num_classes={config.num_classes} but dataset {config.dataset!r} has "
            f"{info.num_classes} classes; set --config.num_classes={info.num_classes}")
    return ClassificationTask(config.num_classes, info.class_names, config.label_smoothing)


def _no_fields(config: ml_collections.ConfigDict) -> None:
    del config


_REGISTRY: dict[str, tuple[Callable, Callable]] = {
    "classification": (_classification, _no_fields),
    "segmentation": (create_segmentation_task, validate_segmentation_config),
    "detection": (create_detection_task, validate_detection_config),
}


def names() -> list[str]:
    return sorted(_REGISTRY)


def create(config: ml_collections.ConfigDict, info):
    """The task named by `config.task`, built for the dataset described by `info`."""
    if config.task not in _REGISTRY:
        raise ValueError(f"config.task={config.task!r} is unknown; use one of {names()}")
    return _REGISTRY[config.task][0](config, info)


def validate(config: ml_collections.ConfigDict) -> None:
    """The task's own checks of its config fields (before anything is built)."""
    _REGISTRY[config.task][1](config)
