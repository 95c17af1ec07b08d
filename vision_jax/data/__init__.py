"""Data: named sources (builtin / tfds / folder), transforms and per-process Grain pipelines,
driven by the run's `DataSection`."""

from vision_jax.data.config import DataSection, data_section, default_data_config
from vision_jax.data.pipeline import (
    EvalBatches,
    make_eval_iterator,
    make_train_iterator,
    validate_data_config,
)
from vision_jax.data.registry import builtin_names, register_builtin
from vision_jax.data.sources import DatasetInfo, open_source, open_splits, validate_dataset

__all__ = [
    "DataSection",
    "DatasetInfo",
    "EvalBatches",
    "builtin_names",
    "data_section",
    "default_data_config",
    "make_eval_iterator",
    "make_train_iterator",
    "open_source",
    "open_splits",
    "register_builtin",
    "validate_data_config",
    "validate_dataset",
]
