"""Multi-label folder data: images plus a CSV of ``path,labels``, labels separated by ``;``.

    path,labels
    img/0001.jpg,bike;person
    img/0002.jpg,tree

A one-row header ``path,labels`` is optional. Paths are relative to the CSV's folder (or
absolute). Label names are given, or read from a ``labels.txt`` (one per line) beside the
CSV, or else the sorted union of the labels in the CSV(s). A folder of such CSVs, one per
split (``train.csv``, ``test.csv``, ...), shares one list of label names; as a training
dataset it is ``config.dataset='multilabel_folder:<folder>'`` (a scheme this module
registers; the multi-label task imports it).

Everything is checked when the CSV is read, before any training: an empty row, a row
without labels, an unknown label, a missing image or a row with the wrong number of fields
is a one-line `ConfigError` naming the file and the row. Images are decoded lazily.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from vision_jax.data.folder import channels_of_mode, decode_image
from vision_jax.data.sources import SCHEMES, DatasetInfo
from vision_jax.errors import ConfigError

LABEL_SEPARATOR = ";"
LABELS_FILE = "labels.txt"
_HEADER = ["path", "labels"]


@dataclasses.dataclass(frozen=True)
class CsvRow:
    line: int  # 1-based line of the CSV file, as an editor shows it
    path: str  # absolute image path
    labels: tuple[str, ...]


def parse_rows(csv_path: str) -> list[CsvRow]:
    """The rows of one CSV (header skipped), checked for form and existing images."""
    base = os.path.dirname(os.path.abspath(csv_path))
    rows = []
    with open(csv_path, newline="") as f:
        reader = csv.reader(f)
        for fields in reader:
            line = reader.line_num
            where = f"{csv_path}: row {line}"
            fields = [field.strip() for field in fields]
            if line == 1 and [f.lower() for f in fields] == _HEADER:
                continue
            if not any(fields):
                raise ConfigError(f"{where} is empty; delete it or write 'path,label1;label2'")
            if len(fields) != 2:
                raise ConfigError(f"{where} has {len(fields)} fields {fields}; write "
                                  "'path,label1;label2' (labels separated by ';', not ',')")
            path, label_field = fields
            if not path:
                raise ConfigError(f"{where} has no image path; write 'path,label1;label2'")
            labels = tuple(dict.fromkeys(
                label.strip() for label in label_field.split(LABEL_SEPARATOR) if label.strip()))
            if not labels:
                raise ConfigError(f"{where} ({path}) has no labels; list them as "
                                  "'label1;label2' or delete the row")
            full_path = path if os.path.isabs(path) else os.path.join(base, path)
            if not os.path.isfile(full_path):
                raise ConfigError(f"{where}: image {path!r} not found (looked for {full_path}); "
                                  "fix the path or delete the row")
            rows.append(CsvRow(line, full_path, labels))
    if not rows:
        raise ConfigError(f"{csv_path} lists no images; add rows 'path,label1;label2'")
    return rows


def read_label_names(directory: str) -> list[str] | None:
    """The names in `directory/labels.txt` (one per line, blank lines skipped), or None."""
    path = os.path.join(directory, LABELS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        names = [line.strip() for line in f if line.strip()]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path} repeats label names; list each label once")
    return names


class MultilabelCsvSource:
    """Random-access source of one CSV: records ``{"image": uint8 HWC, "labels": multi-hot
    uint8 (L,)}``, with `label_names` in label-id order."""

    def __init__(self, csv_path: str, label_names: Sequence[str] | None = None, *,
                 channels: int | None = None, rows: list[CsvRow] | None = None):
        self.csv_path = csv_path
        rows = parse_rows(csv_path) if rows is None else rows
        if label_names is None:
            label_names = (read_label_names(os.path.dirname(os.path.abspath(csv_path)))
                           or sorted({label for row in rows for label in row.labels}))
        self.label_names = tuple(label_names)
        index = {name: k for k, name in enumerate(self.label_names)}
        self._paths = [row.path for row in rows]
        self._labels = np.zeros((len(rows), len(self.label_names)), np.uint8)
        for r, row in enumerate(rows):
            for label in row.labels:
                if label not in index:
                    raise ConfigError(
                        f"{csv_path}: row {row.line}: unknown label {label!r}; known labels: "
                        f"{', '.join(self.label_names)} (fix the row or add the label)")
                self._labels[r, index[label]] = 1
        if channels is None:
            from PIL import Image

            with Image.open(self._paths[0]) as image:
                channels = channels_of_mode(image.mode)
        self.channels = channels

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"image": decode_image(self._paths[index], self.channels),
                "labels": self._labels[index].copy()}

    @property
    def labels(self) -> np.ndarray:
        """(N, L) multi-hot labels of every row (e.g. for positive weights)."""
        return self._labels.copy()

    def __repr__(self) -> str:
        return f"MultilabelCsvSource({self.csv_path!r}, len={len(self)})"


def open_multilabel_folder(root: str, splits: Sequence[str],
                           label_names: Sequence[str] | None = None,
                           channels: int | None = None) -> dict[str, MultilabelCsvSource]:
    """{split: source} from ``root/<split>.csv``; every split shares one list of label names
    (given, ``root/labels.txt``, or the sorted union over the CSVs of ``root``)."""
    available = sorted(name[:-4] for name in os.listdir(root) if name.endswith(".csv"))
    missing = [s for s in splits if s not in available]
    if missing:
        raise ConfigError(f"{root} has no {missing[0]}.csv (its splits: "
                          f"{', '.join(available) or 'none'}); add it or choose another split")
    rows = {s: parse_rows(os.path.join(root, f"{s}.csv")) for s in available}
    if label_names is None:
        label_names = read_label_names(root) or sorted(
            {label for split_rows in rows.values() for row in split_rows for label in row.labels})
    return {s: MultilabelCsvSource(os.path.join(root, f"{s}.csv"), label_names,
                                   channels=channels, rows=rows[s]) for s in splits}


class _LabelIds:
    """A `MultilabelCsvSource` whose records list their label ids under "labels", the
    layout of the TFDS multi-label datasets, so the multi-label task reads every source
    the same way."""

    def __init__(self, source: MultilabelCsvSource):
        self._source = source

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self._source[index]
        return {"image": record["image"], "labels": np.flatnonzero(record["labels"])}

    def __repr__(self) -> str:
        return f"LabelIds({self._source!r})"


def open_multilabel_csv_folder(path: str, splits: dict[str, str], data_dir: str | None,
                               channels: int | None) -> tuple[dict[str, Any], DatasetInfo]:
    """The `multilabel_folder:<path>` dataset scheme: ``<path>/<split>.csv`` per split
    (``config.dataset='multilabel_folder:data/tags'``); records ``{"image", "labels": ids}``
    and a `DatasetInfo` whose class names are the label names."""
    root = os.path.expanduser(path)
    if not os.path.isabs(root) and data_dir:
        root = os.path.join(data_dir, root)
    if not os.path.isdir(root):
        raise ConfigError(f"config.dataset='multilabel_folder:{path}': directory "
                          f"{os.path.abspath(root)} does not exist; point it at the folder of "
                          "<split>.csv files")
    available = sorted(name[:-4] for name in os.listdir(root) if name.endswith(".csv"))
    for field, split in splits.items():
        if split not in available:
            raise ConfigError(f"{field}={split!r} has no {split}.csv in {root} (its splits: "
                              f"{', '.join(available) or 'none'}); add it or choose another")
    opened = open_multilabel_folder(root, available, channels=channels)
    any_source = next(iter(opened.values()))
    info = DatasetInfo(name=f"multilabel_folder:{path}",
                       num_classes=len(any_source.label_names),
                       class_names=any_source.label_names, image_shape=None,
                       split_sizes={s: len(source) for s, source in opened.items()},
                       num_channels=any_source.channels)
    return {split: _LabelIds(opened[split]) for split in splits.values()}, info


SCHEMES.register("multilabel_folder", open_multilabel_csv_folder)
