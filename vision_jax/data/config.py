"""The data fields of a training config: their typed section, defaults and validation.

`DataSection` is what the data layer is handed once the config is parsed
(`vision_jax.training.run_config.parse_config` builds it with `data_section`); every field's
own check sits beside it and runs there, once. What needs the dataset or the process count
(splits, channels, per-process batch sizes) is checked by
`vision_jax.data.pipeline.validate_data_config`. The section keeps the ConfigDict's attribute
names and nesting (``section.image_size``, ``section.normalize.mean``). The augmentations
are `vision_jax.augment.AugmentSection`, the ``config.augment`` group.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import ml_collections

from vision_jax.augment.section import AugmentSection
from vision_jax.errors import ConfigError
from vision_jax.sections import REQUIRED, build, non_negative, one_of, option, positive


def _all_positive(values) -> str | None:
    return None if all(v > 0 for v in values) else "must be positive"


class _ConfigLike:
    """``get`` as on a ConfigDict, for data-layer code that reads optional fields that way."""

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)

    def __getitem__(self, name: str) -> Any:
        return getattr(self, name)


@dataclasses.dataclass(frozen=True)
class NormalizeSection(_ConfigLike):
    """``config.normalize``: the model sees ``(pixel / 255 - mean) / std`` (on device)."""

    mean: tuple[float, ...] = option((0.0,), "per-channel (or one) mean, [0, 1] pixel units")
    std: tuple[float, ...] = option((1.0,), "per-channel (or one) std, [0, 1] pixel units",
                                    check=_all_positive)


@dataclasses.dataclass(frozen=True)
class DataSection(_ConfigLike):
    """What to read and how to batch it (the flat ``config.<field>`` data fields)."""

    dataset: str = option(REQUIRED, "what to load: builtin:<name>, tfds:<name>[:version] or "
                                    "folder:<path>")
    data_dir: str = option("", "TFDS data dir, or the base of a relative folder: path")
    train_split: str = option("train", "training split (TFDS slices work)")
    eval_split: str = option("test", "evaluation split")
    image_size: int = option(REQUIRED, "images are resized to image_size x image_size",
                             check=positive)
    image_channels: int = option(0, "0 = the dataset's own, 1 or 3 converts",
                                 check=one_of(0, 1, 3))
    batch_size: int = option(128, "GLOBAL training batch size", check=positive)
    eval_batch_size: int = option(256, "GLOBAL evaluation batch size", check=positive)
    seed: int = option(0, "seeds the shuffle and the augmentations", check=non_negative)
    num_data_workers: int = option(0, "0 = threads in the training process; N = N worker "
                                      "processes", check=non_negative)
    host_cache_gib: float = option(2.0, "a split whose prepared examples fit in this many GiB "
                                        "is decoded once and held in host memory; 0 = never",
                                   check=non_negative)
    normalize: NormalizeSection = option(NormalizeSection(), "(x - mean) / std per channel")


DATA_FIELDS = tuple(f.name for f in dataclasses.fields(DataSection))


def data_section(config: Mapping | ml_collections.ConfigDict) -> DataSection:
    """The `DataSection` of a config whose data fields sit at its top level."""
    values = {k: config[k] for k in DATA_FIELDS if k in config}
    return build(DataSection, values, "config")


def default_data_config() -> ml_collections.ConfigDict:
    """A ConfigDict holding every field the data pipeline reads, with defaults for the data
    layer's own tests (a digits dataset at 28 px). Training configs start from
    `vision_jax.training.defaults.default_config`, whose dataset and image_size are unset.

    Fields: see `DataSection` and `AugmentSection` (each field's doc).
    """
    config = ml_collections.ConfigDict()
    config.dataset = "builtin:digits"
    config.data_dir = ""
    config.train_split = "train"
    config.eval_split = "test"
    config.image_size = 28
    config.image_channels = 0
    config.batch_size = 128
    config.eval_batch_size = 256
    config.seed = 0
    config.num_data_workers = 0
    config.host_cache_gib = 2.0
    config.normalize = ml_collections.ConfigDict()
    config.normalize.mean = (0.0,)
    config.normalize.std = (1.0,)
    config.augment = ml_collections.ConfigDict(dataclasses.asdict(AugmentSection()))
    return config


def per_process_batch_size(global_size: int, process_count: int, field: str) -> int:
    """`global_size // process_count`, or a one-line error naming `field` if it does not divide."""
    if global_size <= 0 or global_size % process_count:
        raise ConfigError(
            f"{field}={global_size} must be a positive multiple of the process count "
            f"{process_count}; set it to e.g. "
            f"{max(1, global_size // process_count) * process_count}")
    return global_size // process_count
