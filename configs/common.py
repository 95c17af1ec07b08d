"""What every config in this folder shares: dataset statistics, and the one parser of a
config's argument (``configs/x.py:smoke``) with the one `:smoke` shrink.

Config files are loaded by path; `vision_jax.cli` puts the folder above ``configs/`` on
``sys.path``, so ``from configs import common`` works from any working directory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import ml_collections

# Per-channel statistics of ImageNet-1k in [0, 1] pixel units (torchvision's).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# A handful of steps on built-in data (the CI check of a config): about a minute on a CPU,
# most of it compiling (55-107 s for the ResNets, measured idle for issue 12). A config whose
# recipe uses a large batch also scales its learning rate down to the smoke's batch (see
# `smoke_learning_rate`).
SMOKE: dict[str, Any] = {
    "num_steps": 6,
    "batch_size": 16,
    "eval_batch_size": 200,
    "log_every_steps": 2,
    "eval_every_steps": 3,
    "checkpoint_every_steps": 3,
    "schedule.warmup_steps": 2,
    "progress_bar": False,
}


def parse_arg(arg: str | None, config_file: str, choices: Sequence[str] = ("smoke",)) -> str:
    """The config's argument ('' for none), or a one-line error listing the choices."""
    arg = arg or ""
    if arg and arg not in choices:
        raise ValueError(f"{config_file}: unknown argument {arg!r}; use "
                         f"{', '.join(repr(c) for c in choices)} or none")
    return arg


def smoke_learning_rate(recipe_lr: float, recipe_batch: int) -> float:
    """The recipe's learning rate at the smoke's batch, by the linear scaling rule.

    Keeping a large-batch learning rate at 16 images per step moves a batch-norm network's
    weights so far in six steps that the running averages (momentum 0.9: after six updates
    still 53 % their initial mean 0 and variance 1) no longer describe its activations, and
    evaluation, which normalises with them, diverges (eval losses of 10^5 for the ResNets).
    """
    return recipe_lr * SMOKE["batch_size"] / recipe_batch


def apply_smoke(config: ml_collections.ConfigDict, overrides: Mapping[str, Any] | None = None,
                *, builtin_dataset: str = "builtin:digits",
                num_classes: int = 10) -> ml_collections.ConfigDict:
    """Shrinks `config` in place to `SMOKE` (then `overrides`, dotted field names). A catalog
    dataset is replaced by a built-in one (resized and converted to the config's image size
    and channels), since catalog datasets are not prepared on a fresh machine."""
    if not config.dataset.startswith("builtin:"):
        config.dataset = builtin_dataset
        config.num_classes = num_classes
        config.train_split, config.eval_split = "train", "test"
    config.update_from_flattened_dict({**SMOKE, **(overrides or {})})
    return config
