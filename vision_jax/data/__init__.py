"""Data: named sources (builtin / tfds / folder), transforms and per-process Grain pipelines."""

from vision_jax.data.config import default_data_config
from vision_jax.data.pipeline import (
    EvalBatches,
    make_eval_iterator,
    make_train_iterator,
    validate_data_config,
)
from vision_jax.data.registry import builtin_names, register_builtin
from vision_jax.data.sources import DatasetInfo, open_source, open_splits, validate_dataset

__all__ = [
    "DatasetInfo",
    "EvalBatches",
    "builtin_names",
    "default_data_config",
    "make_eval_iterator",
    "make_train_iterator",
    "open_source",
    "open_splits",
    "register_builtin",
    "validate_data_config",
    "validate_dataset",
]
