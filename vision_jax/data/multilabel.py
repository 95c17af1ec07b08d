"""Multi-label and verification records from existing sources, as plain record functions the
pipeline can map or filter with:

- `multi_hot_record`: a record whose "labels" lists class ids (the TFDS catalog's VOC layout,
  `builtin:shapes_multilabel`) -> {"image", "labels": multi-hot};
- `voc_multilabel_record`: a `tfds:voc/2007` detection record -> the set of object classes
  of the image, multi-hot (the PASCAL VOC classification benchmark);
- `ClassSubset`: the records of some classes only, e.g. digits 0-6 to train a verification
  embedding and 7-9 to evaluate it on identities it never saw (`by_class:` datasets);
- `dataset_label_names`: the label names of a TFDS multi-label dataset (its "labels"
  feature), for reports.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from vision_jax.errors import ConfigError

VOC_NUM_CLASSES = 20


def multi_hot(ids: Iterable[int], num_labels: int) -> np.ndarray:
    """(num_labels,) uint8 with 1 at every id in `ids` (repeats allowed)."""
    ids = np.asarray(list(ids), np.int64).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= num_labels):
        raise ValueError(f"label ids {ids.tolist()} fall outside [0, {num_labels})")
    out = np.zeros(num_labels, np.uint8)
    out[ids] = 1
    return out


def dataset_label_names(dataset: str, data_dir: str | None = None) -> tuple[str, ...] | None:
    """The names of the `Sequence(ClassLabel)` "labels" feature of a `builtin:` or `tfds:`
    dataset (already prepared), or None (another scheme, or no such feature)."""
    import tensorflow_datasets as tfds

    from vision_jax.data.sources import parse_dataset, prepare_builtin

    scheme, rest = parse_dataset(dataset)
    data_dir = data_dir or None
    if scheme == "builtin":
        builder = prepare_builtin(rest, data_dir)
    elif scheme == "tfds":
        builder = tfds.builder(rest, data_dir=data_dir)
    else:
        return None
    feature = builder.info.features["labels"] if "labels" in builder.info.features else None
    if isinstance(feature, tfds.features.Sequence) and isinstance(
            feature.feature, tfds.features.ClassLabel):
        return tuple(feature.feature.names)
    return None


def multi_hot_record(record: dict[str, Any], num_labels: int,
                     key: str = "labels") -> dict[str, Any]:
    """{"image", "labels": multi-hot (num_labels,) uint8} from a record listing its class ids
    under `key`."""
    return {"image": np.asarray(record["image"]),
            "labels": multi_hot(record[key], num_labels)}


def voc_multilabel_record(record: dict[str, Any], include_difficult: bool = True
                          ) -> dict[str, Any]:
    """A `tfds:voc/2007` record -> {"image", "labels": (20,) multi-hot}: every class with an
    object in the image; with `include_difficult=False`, only classes with a non-difficult
    object (the catalog's `labels_no_difficult`)."""
    objects = record["objects"]
    ids = np.asarray(objects["label"], np.int64).reshape(-1)
    if not include_difficult:
        difficult = np.asarray(objects["is_difficult"], bool).reshape(-1)
        ids = ids[~difficult]
    return {"image": np.asarray(record["image"]), "labels": multi_hot(ids, VOC_NUM_CLASSES)}


class ClassSubset:
    """Random-access view of the records of `source` whose `key` is one of `classes`.

    Labels are kept as they are (identities need not be contiguous). The matching indices
    are found once, from `labels` (every record's label, in order) when given, else by
    reading every record.
    """

    def __init__(self, source, classes: Sequence[int], key: str = "label",
                 field: str = "config.classes", labels: np.ndarray | None = None):
        wanted = {int(c) for c in classes}
        if not wanted:
            raise ConfigError(f"{field} is empty; list the classes to keep, e.g. (0, 1, 2)")
        if labels is None:
            labels = record_labels(source, key)
        labels = np.asarray(labels)
        missing = sorted(wanted - set(labels.tolist()))
        if missing:
            raise ConfigError(f"{field} lists classes {missing} that this split does not have "
                              f"(it has {sorted(set(labels.tolist()))}); remove them")
        self._source = source
        self.indices = np.flatnonzero(np.isin(labels, sorted(wanted)))
        self.classes = tuple(sorted(wanted))

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self._source[int(self.indices[index])]

    def __repr__(self) -> str:
        return f"ClassSubset(classes={self.classes}, len={len(self)}, of={self._source!r})"


def read_records(source, batch: int = 256) -> Iterator[dict[str, Any]]:
    """Every record of `source` in order, read in batches where the source offers
    ``__getitems__`` (TFDS sources decode a batch in one call)."""
    getitems = getattr(source, "__getitems__", None)
    for start in range(0, len(source), batch):
        indices = list(range(start, min(start + batch, len(source))))
        yield from (getitems(indices) if getitems else [source[i] for i in indices])


def record_labels(source, key: str = "label") -> np.ndarray:
    """(N,) int64: every record's `key` (`read_records`)."""
    return np.asarray([int(record[key]) for record in read_records(source)], np.int64)


def keep_classes(classes: Sequence[int], key: str = "label"):
    """A record predicate (for `grain`'s `filter`): True when `record[key]` is in `classes`."""
    wanted = frozenset(int(c) for c in classes)
    return lambda record: int(record[key]) in wanted
