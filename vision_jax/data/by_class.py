"""`by_class:<dataset>`: any labelled dataset with each split narrowed to some classes, so a
config can train on some identities and evaluate on others it never saw.

    config.dataset = "by_class:builtin:digits"
    config.train_split = "train@0-6"    # digits 0 to 6 of the train split
    config.eval_split = "test@7,8,9"    # held-out digits of the test split

A split is ``<split of the inner dataset>@<classes>``: the inner split (TFDS slices and
``+`` work) and a comma-separated list of class ids and inclusive ranges ``a-b``; without
``@`` the split is taken whole. Records keep their labels (`ClassSubset`). A training split
may end in ``/flip``, ``/rot90`` or ``/rot90flip`` (``"train@0-6/rot90"``): each rotated or
mirrored copy of an identity becomes an identity of its own (`TransformedIdentities`), so
the embedding learns to tell apart four or eight times as many shapes; ``+halves``
(``"train@0-6/rot90flip+halves"``) adds half composites, the top half of one identity over
the bottom half of another (`composite_identities`); ``~`` then leaves out copies that are
held-out identities (``"train@0-6/rot90flip+halves~6r180"``: a 6 turned by 180 degrees is
a 9). The scheme
registers itself in `vision_jax.data.sources.SCHEMES` when this module is imported (the
verification task imports it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np

from vision_jax.data.host_cache import example_nbytes
from vision_jax.data.multilabel import ClassSubset, read_records, record_labels
from vision_jax.data.sources import SCHEMES, DatasetInfo, DataSource, open_splits
from vision_jax.data.transformed_identities import check_variant, expand_identities
from vision_jax.errors import ConfigError

SCHEME = "by_class"
_CLASSES = re.compile(r"^\s*\d+\s*(-\s*\d+\s*)?$")
# (inner dataset, inner split, data_dir) -> every record's label: a split is opened again for
# each evaluation, and reading its labels decodes every record.
_LABELS: dict[tuple[str, str, str | None], np.ndarray] = {}


def parse_classes(text: str, field: str) -> tuple[int, ...]:
    """``"0-6"`` -> (0, ..., 6); ``"7,8,9"`` -> (7, 8, 9); a one-line error naming `field`."""
    classes: set[int] = set()
    for part in text.split(","):
        if not _CLASSES.match(part):
            raise ConfigError(f"{field}: {text!r} is not a list of classes; write ids and "
                              "ranges separated by commas, e.g. '0-6' or '7,8,9'")
        low, _, high = part.partition("-")
        low_id, high_id = int(low), int(high or low)
        if high_id < low_id:
            raise ConfigError(f"{field}: range {part.strip()!r} is empty; write low-high")
        classes.update(range(low_id, high_id + 1))
    return tuple(sorted(classes))


def split_and_classes(split: str, field: str) -> tuple[str, tuple[int, ...] | None]:
    """``"train@0-6"`` -> ("train", (0, ..., 6)); ``"train"`` -> ("train", None)."""
    inner, sep, classes = split.rpartition("@")
    if not sep:
        return split, None
    if not inner.strip():
        raise ConfigError(f"{field}={split!r} names no split before '@'; write e.g. "
                          "'train@0-6'")
    return inner.strip(), parse_classes(classes, field)


def split_and_variant(split: str, field: str) -> tuple[str, str | None]:
    """``"train@0-6/rot90"`` -> ("train@0-6", "rot90"); ``"train@0-6"`` -> (.., None)."""
    rest, sep, variant = split.rpartition("/")
    if not sep:
        return split, None
    check_variant(variant.strip(), field)
    return rest, variant.strip()


# An expanded split reads each record many times (`rot90flip+halves`: 8 copies and about 8
# composite halves): a split of at most this many decoded bytes is decoded once and kept.
IN_MEMORY_LIMIT_BYTES = 256 * 2**20


def in_memory_if_small(source, limit_bytes: int = IN_MEMORY_LIMIT_BYTES):
    """`source`'s records as a list when they fit in `limit_bytes` (estimated from the
    first), else `source` itself."""
    if not len(source) or example_nbytes(source[0]) * len(source) > limit_bytes:
        return source
    return list(read_records(source))


@SCHEMES.register(SCHEME)
def open_by_class(rest: str, splits: Mapping[str, str], data_dir: str | None,
                  channels: int | None) -> tuple[dict[str, DataSource], DatasetInfo]:
    """The inner dataset's sources, each narrowed to its split's classes; `split_sizes` hold
    the narrowed splits (so epochs count only their examples)."""
    if rest.startswith(f"{SCHEME}:"):
        raise ConfigError(f"config.dataset='{SCHEME}:{rest}' nests {SCHEME}: twice; use one")
    variants = {field: split_and_variant(split, field) for field, split in splits.items()}
    parsed = {field: split_and_classes(split, field) for field, (split, _) in variants.items()}
    inner_splits = {field: inner for field, (inner, _) in parsed.items()}
    inner_sources, info = open_splits(rest, inner_splits, data_dir, channels)
    sources: dict[str, DataSource] = {}
    sizes = dict(info.split_sizes)
    for field, (inner, classes) in parsed.items():
        source = inner_sources[inner]
        variant = variants[field][1]
        # Checked before reading every record's label below.
        if classes is not None and info.num_classes is not None and (
                classes[-1] >= info.num_classes):
            raise ConfigError(f"{field}={splits[field]!r} lists class {classes[-1]} but "
                              f"{rest} has classes 0-{info.num_classes - 1}")
        key = (rest, inner, data_dir)
        if (classes is not None or variant is not None) and key not in _LABELS:
            _LABELS[key] = record_labels(source)
        labels = _LABELS.get(key)
        if classes is not None:
            source = ClassSubset(source, classes, field=field, labels=labels)
            labels = labels[source.indices]
        if variant is not None:
            source = expand_identities(in_memory_if_small(source), variant, labels,
                                       field=field)
        sources[splits[field]] = source
        sizes[splits[field]] = len(source)
    return sources, DatasetInfo(
        name=f"{SCHEME}:{info.name}", num_classes=info.num_classes,
        class_names=info.class_names, image_shape=info.image_shape, split_sizes=sizes,
        num_channels=info.num_channels)
