"""Per-process Grain input pipelines for training (infinite, resumable) and evaluation (padded).

Training: one global stream, the same whatever the process count. Position i of
the stream is example ``order_e[i mod N]`` of epoch ``e = i // N``, ``order_e`` a
permutation drawn from ``(data.seed, e)`` (`epoch_order`), so every epoch is shuffled
differently and reproducibly. The host only reads, decodes, resizes and batches (uint8
images); each row carries its position i as ``index``, from which the train step keys the
example's augmentation and dropout on device (`vision_jax.augment`). A small split is
prepared once and held in memory (`host_cache`); its batches are gathered whole, the same
rows the per-example path would build.
Process p takes positions [k*B + p*b, k*B + (p+1)*b) as its batch k (b = B / P), so
global batch k is always positions [k*B, (k+1)*B) in the same row order whatever P is,
and over one epoch the processes see every example exactly once between them.

Evaluation: the split is padded (by repeating examples, with ``mask = 0``) to a
multiple of the global eval batch, then dealt out the same way; every process
yields the same number of batches and each real example appears exactly once
with ``mask = 1``.

Every function takes the run's `DataSection` (built and checked once from the config by
`vision_jax.data.config.data_section`), never the whole config.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
from collections.abc import Callable, Iterator
from typing import Any

import grain
import numpy as np
from absl import flags

from vision_jax.data import host_cache, transforms
from vision_jax.data.config import DataSection, per_process_batch_size
from vision_jax.data.scan import scan_dataset
from vision_jax.data.skipped import SKIPPED_KEY, SkippingSource
from vision_jax.data.sources import DatasetInfo, DataSource, open_splits, validate_dataset
from vision_jax.errors import ConfigError


def validate_data_config(data: DataSection, process_count: int = 1) -> DatasetInfo:
    """Checks the dataset and both splits exist, and the fields that depend on it or on the
    process count (each field's own checks ran when `data` was built); returns the info.

    Cheap (no pipeline, no compilation): call it before building the model.
    Built-in datasets are prepared here on first use.
    """
    info = validate_dataset(
        data.dataset,
        {"config.train_split": data.train_split, "config.eval_split": data.eval_split},
        data.data_dir,
    )
    per_process_batch_size(data.batch_size, process_count, "config.batch_size")
    per_process_batch_size(data.eval_batch_size, process_count, "config.eval_batch_size")
    channels = data.image_channels or info.num_channels
    for name in ("mean", "std"):
        values = getattr(data.normalize, name)
        if channels is not None and len(values) not in (1, channels):
            raise ConfigError(
                f"config.normalize.{name}={values} has {len(values)} values but the dataset "
                f"has {channels} channel(s); give 1 or {channels} values")
    # Decodes a folder dataset's files once; set channels convert, so they may mix.
    scan_dataset(data.dataset, data.data_dir, data.image_channels)
    return info


def _open_split(data: DataSection, split: str, field: str) -> DataSource:
    sources, _ = open_splits(data.dataset, {field: split}, data.data_dir,
                             data.image_channels or None)
    return sources[split]


def _image_and_label(record: dict[str, Any]) -> dict[str, Any]:
    return {"image": record["image"], "label": record["label"]}


@dataclasses.dataclass(frozen=True)
class ExampleSpec:
    """What is task-specific about a task's examples; everything else (decode, resize, stack,
    shuffling, per-process sharding, padding, resumable state, augmentation) is shared.

    select: record -> example with "image" (decoded) and the task's targets, of `keys`.
    keys: the target keys an example carries: "label", "segmentation" (uint8 (H, W)
      classes) or "boxes" (float32 (n, 4) xyxy pixels) with "classes" (int32 (n,)).
    max_boxes: box lists are padded (class -1) or cut to this many.
    min_visible: a box keeps its class while this fraction of it stays in the image.
    mask_fill: the class of mask pixels a transform brings in from outside the image.
    """

    select: Callable[[dict[str, Any]], dict[str, Any]]
    keys: frozenset[str] = frozenset({"label"})
    max_boxes: int = 0
    min_visible: float = 0.25
    mask_fill: int = 0


CLASSIFICATION = ExampleSpec(select=_image_and_label, keys=frozenset({"label"}))


@dataclasses.dataclass(frozen=True)
class HostExample:
    """The one host path for a record at position `index`: select the task's keys, then
    `transforms.prepare` (channels, fixed-size resize, padded boxes; uint8 images), then
    tag it: a training row gets ``index``, its position in the global stream, which keys its
    augmentation and dropout on device (int32 wraps after 2**31 examples, which only repeats
    keys); an eval row gets ``mask``, 1 for the first `eval_size` positions (real examples)
    and 0 for padding, or for a bad file's replacement (`vision_jax.data.skipped`). One Grain
    map per example, picklable for worker processes. With ``prepared`` the records already
    went through `prepare` (the host cache holds them so), and are only tagged.
    """

    select: Callable[[dict[str, Any]], dict[str, Any]]
    size: int
    channels: int = 0
    max_boxes: int = 0
    eval_size: int | None = None
    prepared: bool = False

    def prepare(self, record: dict[str, Any]) -> dict[str, Any]:
        """The deterministic part: the task's keys at the model's input size, uint8, and
        whether the record stands in for a bad file (`SKIPPED_KEY`, a bool)."""
        example = transforms.prepare(self.select(record), self.size, self.channels,
                                     self.max_boxes)
        example[SKIPPED_KEY] = np.bool_(record.get(SKIPPED_KEY, False))
        return example

    def __call__(self, index: int, record: dict[str, Any]) -> dict[str, Any]:
        example = dict(record) if self.prepared else self.prepare(record)
        skipped = bool(example.pop(SKIPPED_KEY))
        if self.eval_size is None:
            example["index"] = np.int32(index % 2**31)
        else:
            example["mask"] = np.float32(index < self.eval_size and not skipped)
        return example


def host_example(data: DataSection, spec: ExampleSpec,
                 eval_size: int | None = None) -> HostExample:
    return HostExample(spec.select, data.image_size, data.image_channels, spec.max_boxes,
                       eval_size)


def _selected(example: dict[str, Any]) -> dict[str, Any]:
    return example  # `SkippingSource` already applied the task's select


def _host_source(source: DataSource, data: DataSection, spec: ExampleSpec, what: str,
                 eval_size: int | None = None) -> tuple[DataSource, HostExample]:
    """The source read through the task's select, a bad file skipped and counted
    (`vision_jax.data.skipped`), and held prepared in memory when it is small
    (`host_cache`), with the host map for its items (one that only tags them when cached)."""
    source = SkippingSource(source, spec.select)
    example = dataclasses.replace(host_example(data, spec, eval_size), select=_selected)
    source = host_cache.maybe_cache(source, example.prepare, data.host_cache_gib, what)
    if isinstance(source, host_cache.PreparedArrays):
        example = dataclasses.replace(example, prepared=True)
    return source, example


def _read_options() -> grain.ReadOptions:
    # Both pipelines batch before reading, so the elements prefetched are whole batches: a
    # few in flight per thread is enough read-ahead (Grain's default, 500, would hold
    # hundreds of batches in memory).
    return grain.ReadOptions(num_threads=8, prefetch_buffer_size=16)


@functools.lru_cache(maxsize=8)  # prefetch threads straddle at most two epochs
def epoch_order(num_examples: int, seed: int, epoch: int) -> np.ndarray:
    """The order of the examples in `epoch` of the training stream: a permutation drawn
    from (seed, epoch), one vectorised draw per epoch (Grain's per-index shuffle costs tens
    of microseconds an example in Python, more than reading a cached example)."""
    order = np.random.default_rng((seed, epoch)).permutation(num_examples)
    order.flags.writeable = False
    return order


def stream_rows(positions: np.ndarray, num_examples: int, seed: int) -> np.ndarray:
    """The example index at each stream position (positions may straddle epochs)."""
    epochs, offsets = np.divmod(positions, num_examples)
    rows = np.empty(len(positions), np.int64)
    for epoch in np.unique(epochs):
        here = epochs == epoch
        rows[here] = epoch_order(num_examples, seed, int(epoch))[offsets[here]]
    return rows


class ShuffledStream:
    """The infinite training stream over `source`, one example per position (picklable,
    for Grain's worker processes)."""

    def __init__(self, source: DataSource, seed: int):
        self._source = source
        self._seed = seed

    def __len__(self) -> int:
        return sys.maxsize

    def __getitem__(self, position: int) -> dict[str, Any]:
        row = stream_rows(np.asarray([position]), len(self._source), self._seed)[0]
        return self._source[int(row)]


class GatheredBatches:
    """Process p's training batches from examples held in memory, each gathered with one
    index per array instead of one Grain map per example (that path costs tens of
    microseconds of host CPU an image; this a few). Batch k holds the same rows as the
    per-example path's batch k: stream positions [k*B + p*b, k*B + (p+1)*b). Element k of
    an infinite source, so the iterator state (the next k) is the per-example path's.
    """

    def __init__(self, examples: host_cache.PreparedArrays, seed: int, batch_size: int,
                 process_index: int, process_count: int):
        self._examples = examples
        self._seed = seed
        self._batch_size = batch_size
        self._first_row = process_index * batch_size
        self._global_batch = batch_size * process_count

    def __len__(self) -> int:
        return sys.maxsize

    def __getitem__(self, k: int) -> dict[str, np.ndarray]:
        positions = k * self._global_batch + self._first_row + np.arange(self._batch_size)
        rows = stream_rows(positions, len(self._examples), self._seed)
        batch = {key: value[rows] for key, value in self._examples.arrays.items()
                 if key != SKIPPED_KEY}  # a training row counts whatever it holds
        batch["index"] = (positions % 2**31).astype(np.int32)
        return batch


def make_train_iterator(
    data: DataSection,
    *,
    process_index: int,
    process_count: int,
    source: DataSource | None = None,
    spec: ExampleSpec | None = None,
) -> grain.DatasetIterator:
    """This process's infinite iterator of training batches.

    Yields ``{"image": uint8 (b, S, S, C), "label": int32 (b,), "index": int32 (b,)}`` (or
    the task's targets in place of "label"; ``index`` is each row's stream position) with
    ``b = data.batch_size // process_count`` and ``S = data.image_size``.
    ``get_state()`` is a JSON-serialisable dict; ``set_state(state)`` on a fresh
    iterator resumes exactly after the last batch taken. `source` replaces
    ``data.train_split`` of ``data.dataset`` (for custom data and tests).
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} must be in [0, {process_count})")
    batch_size = per_process_batch_size(data.batch_size, process_count, "config.batch_size")
    if source is None:
        source = _open_split(data, data.train_split, "config.train_split")
    if len(source) == 0:
        raise ValueError(f"config.train_split={data.train_split!r} is empty")

    source, example = _host_source(source, data, spec or CLASSIFICATION,
                                   f"config.train_split={data.train_split!r}")
    if example.prepared:  # the same batches, gathered a whole batch at a time
        dataset = grain.MapDataset.source(GatheredBatches(
            source, data.seed, batch_size, process_index, process_count))
    else:
        dataset = grain.MapDataset.source(ShuffledStream(source, data.seed))
        dataset = dataset.map_with_index(example)
        # Process p takes rows [p*b, (p+1)*b) of every global batch -- the rows its devices
        # hold in the global array -- so the global batch is row for row the one a single
        # process builds, and the per-row randomness of the step (augmentation, dropout),
        # keyed by each row's stream index, does not depend on the process count.
        dataset = dataset.batch(batch_size, drop_remainder=True, batch_fn=transforms.stack)
        dataset = dataset[process_index::process_count]
    iter_dataset = dataset.to_iter_dataset(_read_options())
    if data.num_data_workers > 0 and not example.prepared:
        if not flags.FLAGS.is_parsed():
            # Grain's worker pool reads absl flags; outside an absl app (tests,
            # notebooks) nothing parsed them, so take their defaults.
            flags.FLAGS.mark_as_parsed()
        iter_dataset = iter_dataset.mp_prefetch(
            grain.MultiprocessingOptions(num_workers=data.num_data_workers))
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
    data: DataSection,
    split: str | None = None,
    *,
    process_index: int,
    process_count: int,
    source: DataSource | None = None,
    spec: ExampleSpec | None = None,
) -> EvalBatches:
    """This process's eval batches of `split` (default `data.eval_split`), padded.

    Yields ``{"image": uint8 (b, S, S, C), "label": int32 (b,), "mask": float32 (b,)}``
    with ``b = data.eval_batch_size // process_count``; padding examples have
    mask 0. All processes yield ``ceil(N / data.eval_batch_size)`` batches.
    """
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} must be in [0, {process_count})")
    batch_size = per_process_batch_size(
        data.eval_batch_size, process_count, "config.eval_batch_size")
    split = split or data.eval_split
    if source is None:
        source = _open_split(data, split, "config.eval_split")
    num_examples = len(source)
    if num_examples == 0:
        raise ValueError(f"eval split {split!r} is empty")
    global_batch = batch_size * process_count
    num_batches = math.ceil(num_examples / global_batch)
    padded_size = num_batches * global_batch

    source, example = _host_source(source, data, spec or CLASSIFICATION,
                                   f"eval split {split!r}", num_examples)
    copies = math.ceil(padded_size / num_examples)
    dataset = grain.MapDataset.source(source).repeat(copies, reseed_each_epoch=False)
    dataset = dataset[:padded_size].map_with_index(example)
    dataset = dataset[process_index::process_count]
    dataset = dataset.batch(batch_size, drop_remainder=True, batch_fn=transforms.stack)
    return EvalBatches(dataset, num_batches, num_examples)
