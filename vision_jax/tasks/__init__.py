"""Task registry: a task supplies the loss, the metrics and the reports.

The training loop only calls `loss`, `eval_sums`, `summarize` and
`write_report`; it never branches on which task it runs.
"""

from __future__ import annotations

from collections.abc import Callable

import ml_collections

from vision_jax.tasks.classification import ClassificationTask


def _classification(config: ml_collections.ConfigDict, info) -> ClassificationTask:
    return ClassificationTask(config.num_classes, info.class_names, config.label_smoothing)


_REGISTRY: dict[str, Callable] = {"classification": _classification}


def names() -> list[str]:
    return sorted(_REGISTRY)


def create(config: ml_collections.ConfigDict, info):
    """The task named by `config.task`, built for the dataset described by `info`."""
    if config.task not in _REGISTRY:
        raise ValueError(f"config.task={config.task!r} is unknown; use one of {names()}")
    return _REGISTRY[config.task](config, info)
