"""Shared `:smoke` settings: a handful of steps on built-in data, for CI and for
checking a config end to end on a laptop in seconds."""

from __future__ import annotations

import ml_collections


def apply_smoke(config: ml_collections.ConfigDict, *, builtin_dataset: str = "builtin:digits",
                num_classes: int = 10) -> ml_collections.ConfigDict:
    """Shrinks `config` in place to a few steps; a catalog dataset is replaced by a
    built-in one (resized and converted to the config's image size and channels),
    since catalog datasets are not prepared on a fresh machine."""
    if not config.dataset.startswith("builtin:"):
        config.dataset = builtin_dataset
        config.num_classes = num_classes
        config.train_split, config.eval_split = "train", "test"
    config.num_steps = 6
    config.batch_size = 16
    config.eval_batch_size = 200
    config.log_every_steps = 2
    config.eval_every_steps = 3
    config.checkpoint_every_steps = 3
    config.schedule.warmup_steps = 2
    return config
