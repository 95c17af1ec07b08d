"""The data fields of a training config, with defaults, and their validation."""

from __future__ import annotations

import ml_collections


def default_data_config() -> ml_collections.ConfigDict:
    """A ConfigDict holding every field the data pipeline reads, with safe defaults.

    Fields:
      dataset: what to load: ``builtin:<name>`` (offline, e.g. ``builtin:digits``),
        ``tfds:<name>[:version]`` (a prepared TFDS catalog dataset) or
        ``folder:<path>`` (class-per-subfolder images).
      data_dir: the TFDS data dir ('' = the TFDS default, ~/tensorflow_datasets);
        for ``folder:`` datasets, the base of a relative path.
      train_split / eval_split: split names (TFDS slices like ``train[:90%]`` work
        for ``builtin:`` and ``tfds:``).
      image_size: every image is resized to image_size x image_size (bilinear).
      image_channels: 0 = the dataset's own channel count; 1 or 3 converts
        (grey -> RGB repeats the channel, RGB -> grey takes the ITU-R 601 luma).
        Optional: configs without it get 0.
      batch_size / eval_batch_size: GLOBAL batch sizes, summed over processes;
        each must be a multiple of the process count.
      seed: seeds the per-epoch shuffle and the augmentations.
      num_data_workers: 0 = load in the training process (threads); N > 0 = N
        worker processes per training process.
      normalize.mean / normalize.std: per-channel (or one value for all channels),
        in [0, 1] pixel units: images are scaled to [0, 1], then (x - mean) / std.
      augment (training only):
        crop_padding: pad this many zero pixels per side, crop back (0 = off).
        flip: random horizontal flip.
        scale: (min, max) zoom factor, then crop/pad back ((1.0, 1.0) = off).
        rotate_degrees: rotate by up to +/- this many degrees (0 = off).
        color_jitter: brightness/contrast/saturation strength (0 = off).
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
    config.normalize = ml_collections.ConfigDict()
    config.normalize.mean = (0.0,)
    config.normalize.std = (1.0,)
    config.augment = ml_collections.ConfigDict()
    config.augment.crop_padding = 0
    config.augment.flip = False
    config.augment.scale = (1.0, 1.0)
    config.augment.rotate_degrees = 0.0
    config.augment.color_jitter = 0.0
    return config


def _require_fields(config: ml_collections.ConfigDict, reference: ml_collections.ConfigDict,
                    prefix: str = "config") -> None:
    for key, value in reference.items():
        if key not in config:
            raise ValueError(
                f"{prefix}.{key} is missing; build the config from "
                "vision_jax.data.default_data_config() or set the field")
        if isinstance(value, ml_collections.ConfigDict):
            _require_fields(config[key], value, f"{prefix}.{key}")


def per_process_batch_size(global_size: int, process_count: int, field: str) -> int:
    """`global_size // process_count`, or a one-line error naming `field` if it does not divide."""
    if global_size <= 0 or global_size % process_count:
        raise ValueError(
            f"{field}={global_size} must be a positive multiple of the process count "
            f"{process_count}; set it to e.g. "
            f"{max(1, global_size // process_count) * process_count}")
    return global_size // process_count


def check_data_fields(config: ml_collections.ConfigDict, num_channels: int | None,
                      process_count: int = 1, *, training: bool = True) -> None:
    """One-line errors for data fields that are out of range (no data is read).

    `training=False` skips the fields only training reads (batch_size, augment).
    """
    reference = default_data_config()
    del reference["image_channels"]  # optional: absent means 0
    _require_fields(config, reference)
    if config.get("image_channels", 0) not in (0, 1, 3):
        raise ValueError(
            f"config.image_channels={config.image_channels} must be 0 (the dataset's), 1 or 3")
    if config.image_size <= 0:
        raise ValueError(f"config.image_size={config.image_size} must be positive")
    if training:
        per_process_batch_size(config.batch_size, process_count, "config.batch_size")
    per_process_batch_size(config.eval_batch_size, process_count, "config.eval_batch_size")
    if config.num_data_workers < 0:
        raise ValueError(f"config.num_data_workers={config.num_data_workers} must be >= 0")
    for name in ("mean", "std"):
        values = tuple(config.normalize[name])
        if num_channels is not None and len(values) not in (1, num_channels):
            raise ValueError(
                f"config.normalize.{name}={values} has {len(values)} values but the dataset "
                f"has {num_channels} channel(s); give 1 or {num_channels} values")
    if any(s <= 0 for s in config.normalize.std):
        raise ValueError(f"config.normalize.std={tuple(config.normalize.std)} must be positive")
    if not training:
        return
    augment = config.augment
    if augment.crop_padding < 0:
        raise ValueError(f"config.augment.crop_padding={augment.crop_padding} must be >= 0")
    low, high = augment.scale
    if not 0 < low <= high:
        raise ValueError(
            f"config.augment.scale={tuple(augment.scale)} must be (min, max) with 0 < min <= max")
    if augment.rotate_degrees < 0 or augment.color_jitter < 0:
        raise ValueError(
            "config.augment.rotate_degrees and config.augment.color_jitter must be >= 0")
