"""Per-process Grain input pipelines for training (infinite, resumable) and evaluation (padded).

Training: one global stream, the same whatever the process count. Position i of
the stream is example ``shuffle_e(i mod N)`` of epoch ``e = i // N``; Grain folds
the epoch number into `config.seed`, so every epoch is shuffled differently and
reproducibly. Each example's augmentation is seeded from `config.seed` and i.
Process p takes positions [k*B + p*b, k*B + (p+1)*b) as its batch k (b = B / P), so
global batch k is always positions [k*B, (k+1)*B) in the same row order whatever P is,
and over one epoch the processes see every example exactly once between them.

Evaluation: the split is padded (by repeating examples, with ``mask = 0``) to a
multiple of the global eval batch, then dealt out the same way; every process
yields the same number of batches and each real example appears exactly once
with ``mask = 1``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

import grain
import ml_collections
import numpy as np
from absl import flags

from vision_jax.data import transforms
from vision_jax.data.config import check_data_fields, per_process_batch_size
from vision_jax.data.sources import DatasetInfo, DataSource, open_splits, validate_dataset

# Seed offset for augmentations, so they are not drawn from the shuffle's stream.
_AUGMENT_SEED_OFFSET = 1_000_003


def validate_data_config(
    config: ml_collections.ConfigDict, process_count: int = 1
) -> DatasetInfo:
    """Checks every data field and that the dataset and both splits exist; returns the info.

    Cheap (no pipeline, no compilation): call it before building the model.
    Built-in datasets are prepared here on first use.
    """
    info = validate_dataset(
        config.dataset,
        {"config.train_split": config.train_split, "config.eval_split": config.eval_split},
        config.data_dir,
    )
    check_data_fields(config, _channels(config, info), process_count)
    return info


def _channels(config: ml_collections.ConfigDict, info: DatasetInfo) -> int | None:
    """Channels of the images the pipeline yields: `config.image_channels` or the dataset's."""
    return config.get("image_channels", 0) or info.num_channels


def _open_split(config: ml_collections.ConfigDict, split_field: str) -> DataSource:
    split = config[split_field]
    sources, _ = open_splits(config.dataset, {f"config.{split_field}": split}, config.data_dir)
    return sources[split]


def _image_and_label(record: dict[str, Any]) -> dict[str, Any]:
    return {"image": record["image"], "label": record["label"]}


@dataclasses.dataclass(frozen=True)
class ExampleSpec:
    """How a task turns source records into batches; the pipeline around it
    (shuffling, per-process sharding, padding, resumable state) is shared.

    select: record -> example dict with "image" and the task's targets.
    preprocess: config -> deterministic transforms (train and eval), on the example.
    augmentations: config.augment -> random transforms (train only); geometric ones
      must move the targets (masks, boxes) together with the image.
    stack: list of examples -> batch dict of arrays.
    """

    select: Callable[[dict[str, Any]], dict[str, Any]]
    preprocess: Callable[[ml_collections.ConfigDict], list]
    augmentations: Callable[[ml_collections.ConfigDict], list]
    stack: Callable[[list[dict[str, Any]]], dict[str, np.ndarray]]


def _preprocess(config: ml_collections.ConfigDict) -> list[grain.transforms.Map]:
    steps: list[grain.transforms.Map] = [transforms.ToFloat()]
    if config.get("image_channels", 0):
        steps.append(transforms.ConvertChannels(config.image_channels))
    return [*steps, transforms.Resize(config.image_size)]


def augmentations(augment: ml_collections.ConfigDict) -> list[grain.transforms.RandomMap]:
    """The enabled augmentations of `config.augment`, in the order they are applied."""
    chain: list[grain.transforms.RandomMap] = []
    if tuple(augment.scale) != (1.0, 1.0):
        chain.append(transforms.RandomScale(tuple(augment.scale)))
    if augment.crop_padding > 0:
        chain.append(transforms.RandomCropWithPadding(augment.crop_padding))
    if augment.rotate_degrees > 0:
        chain.append(transforms.RandomRotation(augment.rotate_degrees))
    if augment.flip:
        chain.append(transforms.RandomHorizontalFlip())
    if augment.color_jitter > 0:
        chain.append(transforms.ColorJitter(augment.color_jitter))
    return chain


def _stack(examples: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    batch = {
        "image": np.stack([e["image"] for e in examples]).astype(np.float32, copy=False),
        "label": np.asarray([e["label"] for e in examples], np.int32),
    }
    if "mask" in examples[0]:
        batch["mask"] = np.asarray([e["mask"] for e in examples], np.float32)
    return batch


CLASSIFICATION = ExampleSpec(select=_image_and_label, preprocess=_preprocess,
                             augmentations=augmentations, stack=_stack)


def _read_options() -> grain.ReadOptions:
    # Both pipelines batch before reading, so the elements prefetched are whole batches: a
    # few in flight per thread is enough read-ahead (Grain's default, 500, would hold
    # hundreds of batches in memory).
    return grain.ReadOptions(num_threads=8, prefetch_buffer_size=16)


def make_train_iterator(
    config: ml_collections.ConfigDict,
    info: DatasetInfo,
    *,
    process_index: int,
    process_count: int,
    source: DataSource | None = None,
    spec: ExampleSpec | None = None,
) -> grain.DatasetIterator:
    """This process's infinite iterator of training batches.

    Yields ``{"image": float32 (b, S, S, C), "label": int32 (b,)}`` with
    ``b = config.batch_size // process_count`` and ``S = config.image_size``.
    ``get_state()`` is a JSON-serialisable dict; ``set_state(state)`` on a fresh
    iterator resumes exactly after the last batch taken. `source` replaces
    ``config.train_split`` of ``config.dataset`` (for custom data and tests).
    """
    check_data_fields(config, _channels(config, info), process_count)
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} must be in [0, {process_count})")
    batch_size = per_process_batch_size(config.batch_size, process_count, "config.batch_size")
    source = source if source is not None else _open_split(config, "train_split")
    if len(source) == 0:
        raise ValueError(f"config.train_split={config.train_split!r} is empty")

    dataset = grain.MapDataset.source(source).shuffle(seed=config.seed).repeat(None)
    spec = spec or CLASSIFICATION
    dataset = dataset.map(spec.select)
    for transform in spec.preprocess(config):
        dataset = dataset.map(transform)
    chain = spec.augmentations(config.augment)
    if chain:
        dataset = dataset.random_map(
            transforms.RandomChain(chain), seed=config.seed + _AUGMENT_SEED_OFFSET)
    dataset = dataset.map(transforms.Normalize(config.normalize.mean, config.normalize.std))
    # Sharding after the random ops keeps each position's augmentation independent of P.
    # Process p takes rows [p*b, (p+1)*b) of every global batch -- the rows its devices hold in
    # the global array -- so the global batch is row for row the one a single process builds,
    # and per-row randomness in the step (dropout masks) does not depend on the process count.
    dataset = dataset.batch(batch_size, drop_remainder=True, batch_fn=spec.stack)
    dataset = dataset[process_index::process_count]
    iter_dataset = dataset.to_iter_dataset(_read_options())
    if config.num_data_workers > 0:
        if not flags.FLAGS.is_parsed():
            # Grain's worker pool reads absl flags; outside an absl app (tests,
            # notebooks) nothing parsed them, so take their defaults.
            flags.FLAGS.mark_as_parsed()
        iter_dataset = iter_dataset.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=config.num_data_workers))
    return iter(iter_dataset)


class EvalBatches:
    """Re-iterable eval batches of one process; ``len()`` is the number of batches."""

    def __init__(self, dataset: grain.MapDataset, num_batches: int, num_examples: int):
        self._dataset = dataset
        self.num_batches = num_batches
        self.num_examples = num_examples  # real examples in the split, over all processes

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        return iter(self._dataset.to_iter_dataset(_read_options()))


def make_eval_iterator(
    config: ml_collections.ConfigDict,
    info: DatasetInfo,
    split: str | None = None,
    *,
    process_index: int,
    process_count: int,
    source: DataSource | None = None,
    spec: ExampleSpec | None = None,
) -> EvalBatches:
    """This process's eval batches of `split` (default `config.eval_split`), padded.

    Yields ``{"image": float32 (b, S, S, C), "label": int32 (b,), "mask": float32 (b,)}``
    with ``b = config.eval_batch_size // process_count``; padding examples have
    mask 0. All processes yield ``ceil(N / config.eval_batch_size)`` batches.
    """
    check_data_fields(config, _channels(config, info), process_count, training=False)
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} must be in [0, {process_count})")
    batch_size = per_process_batch_size(
        config.eval_batch_size, process_count, "config.eval_batch_size")
    if source is None:
        split = split or config.eval_split
        sources, _ = open_splits(config.dataset, {"config.eval_split": split}, config.data_dir)
        source = sources[split]
    num_examples = len(source)
    if num_examples == 0:
        raise ValueError(f"eval split {split!r} is empty")
    global_batch = batch_size * process_count
    num_batches = math.ceil(num_examples / global_batch)
    padded_size = num_batches * global_batch

    spec = spec or CLASSIFICATION
    dataset = grain.MapDataset.source(source).map(spec.select)
    for transform in spec.preprocess(config):
        dataset = dataset.map(transform)
    dataset = dataset.map(transforms.Normalize(config.normalize.mean, config.normalize.std))
    copies = math.ceil(padded_size / num_examples)
    dataset = dataset.repeat(copies, reseed_each_epoch=False)[:padded_size]
    dataset = dataset.map_with_index(
        lambda index, example: {**example, "mask": float(index < num_examples)})
    dataset = dataset[process_index::process_count]
    dataset = dataset.batch(batch_size, drop_remainder=True, batch_fn=spec.stack)
    return EvalBatches(dataset, num_batches, num_examples)
