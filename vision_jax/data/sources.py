"""Random-access data sources named by a string: `builtin:`, `tfds:`, `folder:`, ...

`open_source(dataset, split)` returns a source (``len`` + ``__getitem__``) of
records ``{"image": uint8 HWC ndarray, "label": int, ...}``, decoded lazily per
record, plus a `DatasetInfo`. Dataset strings:

- ``builtin:<name>`` — an offline dataset shipped in `vision_jax.data.builtin`
  (e.g. ``builtin:digits``), prepared into the TFDS data dir on first use;
- ``tfds:<name>[:<version>]`` — a TFDS catalog dataset already prepared in
  array_record format (preparing one needs TensorFlow: the `[tfds-build]` extra);
- ``segmentation_folder:<path>`` — `images/` + `annotations/` masks, e.g. the Oxford-IIIT
  Pet layout (see `vision_jax.data.segmentation`);
- ``folder:<path>`` — class-per-subfolder images (see `vision_jax.data.folder`);
  a relative path resolves against `data_dir` when one is given;
- ``coco:<path>`` — COCO-format JSON + images (see `vision_jax.data.detection`).

Each scheme is an opener in the `SCHEMES` registry, ``open(rest, splits, data_dir,
channels) -> (sources, info)``; a plug-in adds one with ``@SCHEMES.register("name")``.

`validate_dataset` runs every check `open_source` does for a set of splits, so a
trainer can fail with a one-line message before it compiles anything.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import numpy as np
import tensorflow_datasets as tfds

from vision_jax.data import folder as folder_lib
from vision_jax.data.paths import resolve_dataset_dir
from vision_jax.data.registry import BUILTINS, builtin_names, register_builtin
from vision_jax.registry import Registry

__all__ = [
    "SCHEMES", "DatasetInfo", "DataSource", "builtin_names", "open_source", "open_splits",
    "parse_dataset", "prepare_builtin", "register_builtin", "validate_dataset",
]

# scheme -> opener(rest, splits, data_dir, channels) -> (sources, info), as `open_splits`.
Opener = Callable[..., tuple[dict[str, "DataSource"], "DatasetInfo"]]
SCHEMES: Registry[Opener] = Registry("dataset scheme", field="config.dataset")
# TFDS split syntax: "train", "train[:90%]", "train+validation"; we check the base names.
_SPLIT_PART = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*(\[.*\])?\s*$")


class DataSource(Protocol):
    """What the pipeline needs from a source: random access to records."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What the trainer needs to know about a dataset before building a model.

    `image_shape` is (H, W, C), or None when image sizes vary within the dataset;
    `num_channels` is C even then (None only if unknown). `num_classes` and
    `class_names` come from the `label` feature (None without one).
    """

    name: str
    num_classes: int | None
    class_names: tuple[str, ...] | None
    image_shape: tuple[int, int, int] | None
    split_sizes: dict[str, int]
    num_channels: int | None = None


def parse_dataset(dataset: str) -> tuple[str, str]:
    """Splits ``"<scheme>:<rest>"``; raises a one-line error naming `config.dataset`."""
    scheme, sep, rest = dataset.partition(":")
    if not sep or scheme not in SCHEMES or not rest:
        raise ValueError(
            f"config.dataset={dataset!r} is not a dataset string; use one of "
            f"builtin:<name> (names: {', '.join(builtin_names())}), tfds:<name>[:version], "
            f"or <scheme>:<path> with a scheme of {', '.join(SCHEMES.names())}")
    return scheme, rest


def _data_dir_or_none(data_dir: str | None) -> str | None:
    return os.path.expanduser(data_dir) if data_dir else None


# -- builtin -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _exclusive_lock(path: str) -> Iterator[None]:
    # Several local processes of one job may prepare the same dataset at once;
    # TFDS's own tmp-dir-then-rename is not safe against that race.
    with open(path, "a") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def prepare_builtin(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
    """The prepared builder of `builtin:<name>`, generating it into `data_dir` if needed."""
    if name not in BUILTINS:
        raise ValueError(
            f"config.dataset='builtin:{name}' is not a built-in dataset; "
            f"use one of: {', '.join('builtin:' + n for n in builtin_names())}")
    builder_class = BUILTINS.get(name)
    builder = builder_class(data_dir=data_dir, file_format="array_record")
    if builder.is_prepared():
        return builder
    os.makedirs(builder.data_dir_root, exist_ok=True)
    with _exclusive_lock(os.path.join(builder.data_dir_root, f".{builder.name}.lock")):
        builder = builder_class(data_dir=data_dir, file_format="array_record")
        if not builder.is_prepared():  # another process may have finished it meanwhile
            builder.download_and_prepare()
            builder = builder_class(data_dir=data_dir, file_format="array_record")
    return builder


# -- tfds catalog ------------------------------------------------------------------------------


def _tfds_builder(name: str, data_dir: str | None) -> tfds.core.DatasetBuilder:
    # Imported here: `python -m vision_jax.data.prepare` would otherwise find its own module
    # already imported (by the package) before it runs as __main__.
    from vision_jax.data.prepare import missing_module, prepare_command

    if data_dir is not None and not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"config.data_dir={data_dir!r} does not exist; set it to the directory the "
            "dataset was prepared into (or '' for the TFDS default ~/tensorflow_datasets)")
    name, _, version = name.partition(":")
    try:
        builder = tfds.builder(f"{name}:{version}" if version else name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"config.dataset='tfds:{name}' is not in the TFDS catalog; "
            "check the name at https://www.tensorflow.org/datasets/catalog") from None
    except ModuleNotFoundError as error:  # catalog code that needs TensorFlow even to describe
        # its features (e.g. coco uses tf.int64)
        raise ValueError(
            f"config.dataset='tfds:{name}': the TFDS catalog code of {name!r} needs "
            f"{missing_module(error)!r}; name the prepared version (tfds:{name}:<version>, the "
            f"folder name under <data_dir>/{name}/), which TFDS reads from the prepared files "
            "alone, or pip install -e '.[tfds-build]'") from None
    except AssertionError as error:  # TFDS reports unknown versions this way
        raise ValueError(
            f"config.dataset='tfds:{name}:{version}': {error}; use one of those versions "
            "or drop ':<version>'") from None
    build_command = prepare_command(f"{name}:{version}" if version else name, data_dir)
    if not builder.is_prepared():
        raise FileNotFoundError(
            f"config.dataset='tfds:{name}' is not prepared in {builder.data_dir_root}; "
            f"prepare it once (needs TensorFlow): {build_command}, or fix config.data_dir")
    if builder.info.file_format != tfds.core.FileFormat.ARRAY_RECORD:
        raise ValueError(
            f"config.dataset='tfds:{name}' is prepared as {builder.info.file_format.value}, "
            f"which has no random access; re-prepare it: {build_command}")
    return builder


# -- info and sources --------------------------------------------------------------------------


def _tfds_info(builder: tfds.core.DatasetBuilder, name: str) -> DatasetInfo:
    features = builder.info.features
    num_classes = class_names = None
    if "label" in features and isinstance(features["label"], tfds.features.ClassLabel):
        num_classes = features["label"].num_classes
        class_names = tuple(features["label"].names)
    image_shape = num_channels = None
    if "image" in features:
        shape = tuple(features["image"].shape)
        num_channels = shape[-1]
        image_shape = shape if None not in shape else None
    return DatasetInfo(
        name=name,
        num_classes=num_classes,
        class_names=class_names,
        image_shape=image_shape,
        split_sizes={s: info.num_examples for s, info in builder.info.splits.items()},
        num_channels=num_channels,
    )


def _check_split(split: str, available: Mapping[str, int], split_field: str, allow_slices: bool):
    parts = split.split("+") if allow_slices else [split]
    for part in parts:
        match = _SPLIT_PART.match(part)
        base = match.group(1) if match and (allow_slices or not match.group(2)) else None
        if base not in available:
            raise ValueError(
                f"{split_field}={split!r} is not a split of this dataset; "
                f"available: {', '.join(sorted(available))}")


class _TfdsRecords:
    """A TFDS array_record source whose records have NumPy images and int labels."""

    def __init__(self, source: Any):
        self._source = source

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return _as_record(self._source[index])

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        # Grain reads batches through this; TFDS reads several records in one call.
        return [_as_record(r) for r in self._source.__getitems__(indices)]

    def __repr__(self) -> str:
        return f"TfdsRecords({self._source!r})"


def _as_record(example: dict[str, Any]) -> dict[str, Any]:
    record = dict(example)
    if "image" in record:
        record["image"] = np.asarray(record["image"])
    # Class ids become Python ints; other scalar labels (e.g. LFW's person names, bytes)
    # stay as they are.
    label = record.get("label")
    if label is not None and np.ndim(label) == 0 and np.issubdtype(np.asarray(label).dtype,
                                                                    np.integer):
        record["label"] = int(label)
    return record


def _open_folder(path: str, splits: Mapping[str, str], data_dir: str | None,
                 channels: int | None) -> tuple[dict[str, DataSource], DatasetInfo]:
    root = resolve_dataset_dir("folder", path, data_dir, "<class>/ or <split>/<class>/ images")
    try:
        index = folder_lib.index_folder(root)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"config.dataset='folder:{path}': {error}") from None
    sizes = {name: len(items) for name, items in index.splits.items()}
    for field, split in splits.items():
        _check_split(split, sizes, field, allow_slices=False)
    sources = {s: folder_lib.FolderSource(root, s, channels=channels) for s in splits.values()}
    any_source = next(iter(sources.values())) if sources else folder_lib.FolderSource(
        root, sorted(sizes)[0], channels=channels)
    info = DatasetInfo(
        name=f"folder:{path}",
        num_classes=len(index.class_names),
        class_names=index.class_names,
        image_shape=any_source.image_shape(),
        split_sizes=sizes,
        num_channels=any_source.channels,
    )
    return sources, info


def _open_tfds_builder(builder: tfds.core.DatasetBuilder, dataset: str,
                       splits: Mapping[str, str]) -> tuple[dict[str, DataSource], DatasetInfo]:
    info = _tfds_info(builder, dataset)
    for field, split in splits.items():
        _check_split(split, info.split_sizes, field, allow_slices=True)
    sources = {s: _TfdsRecords(builder.as_data_source(split=s)) for s in splits.values()}
    return sources, info


@SCHEMES.register("builtin")
def _open_builtin(name: str, splits: Mapping[str, str], data_dir: str | None,
                  channels: int | None) -> tuple[dict[str, DataSource], DatasetInfo]:
    del channels  # the builder fixes them
    return _open_tfds_builder(prepare_builtin(name, data_dir), f"builtin:{name}", splits)


@SCHEMES.register("tfds")
def _open_tfds(name: str, splits: Mapping[str, str], data_dir: str | None,
               channels: int | None) -> tuple[dict[str, DataSource], DatasetInfo]:
    del channels  # the prepared dataset fixes them
    return _open_tfds_builder(_tfds_builder(name, data_dir), f"tfds:{name}", splits)


SCHEMES.register("folder", _open_folder)


def _served_by(module: str, function: str) -> Opener:
    """An opener that lives in another module, imported on first use (the segmentation and
    detection data modules import the pipeline, which imports this module)."""

    def open_lazily(rest, splits, data_dir, channels):
        opener = getattr(importlib.import_module(module), function)
        return opener(rest, splits, data_dir, channels)

    open_lazily.__qualname__ = f"{module}.{function}"
    return open_lazily


SCHEMES.register("segmentation_folder",
                 _served_by("vision_jax.data.segmentation", "open_segmentation_folder"))
SCHEMES.register("coco", _served_by("vision_jax.data.detection", "open_coco"))


def open_splits(dataset: str, splits: Mapping[str, str], data_dir: str | None = None,
                channels: int | None = None) -> tuple[dict[str, DataSource], DatasetInfo]:
    """Sources for every split in `splits` ({config field: split name}), and the info.

    Checks every split before opening any; errors name the config field.
    """
    scheme, rest = parse_dataset(dataset)
    if data_dir and "://" in data_dir:  # gs://: read (and prepared) through a local mirror
        from vision_jax.data import remote_dir

        return remote_dir.open_mirrored(SCHEMES.get(scheme), rest, splits, data_dir, channels)
    return SCHEMES.get(scheme)(rest, splits, _data_dir_or_none(data_dir), channels)


def open_source(
    dataset: str, split: str, *, data_dir: str | None = None, channels: int | None = None
) -> tuple[DataSource, DatasetInfo]:
    """A lazily decoding random-access source of `split` of `dataset`, and its info.

    `data_dir`: the TFDS data dir ('' or None = the TFDS default); for `folder:`
    datasets, the base of a relative path. `channels` (folder datasets only)
    forces 1, 3 or 4 channels instead of the first image's count.
    """
    sources, info = open_splits(dataset, {"split": split}, data_dir, channels)
    return sources[split], info


def validate_dataset(
    dataset: str, splits: Mapping[str, str] | None = None, data_dir: str | None = None
) -> DatasetInfo:
    """Checks that `dataset` exists and has `splits`, without building a pipeline.

    `splits` maps the config field to the split it names, e.g.
    ``{"config.train_split": "train", "config.eval_split": "test"}``, so errors
    name the field to fix. Built-in datasets are prepared here if needed.
    """
    _, info = open_splits(dataset, dict(splits or {}), data_dir)
    return info
