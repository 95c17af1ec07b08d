"""Class-per-subfolder image datasets (`folder:<path>`).

Two layouts are accepted; the first one found wins:

- split layout: ``root/<split>/<class>/<image>`` — every subfolder of `root`
  is a split (``train``, ``test``, ``validation``, ...);
- flat layout: ``root/<class>/<image>`` — split deterministically into
  ``train`` (80 %) and ``test`` (20 %) per class: each class's files, sorted by
  name, are permuted with a fixed seed and the first ``round(0.2 * n)`` go to
  ``test``. The split depends only on the file names, never on the machine.

Images are ``*.png``, ``*.jpg``, ``*.jpeg`` (any case); other files are ignored.
Class names are the sorted class subfolder names (the union over splits, so a
class missing from one split keeps its label). Images are decoded lazily with
PIL and converted to `channels` (1 = grayscale, 3 = RGB, 4 = RGBA; by default
the channel count of the first image in sorted order; `vision_jax.data.scan` refuses a
dataset whose files mix channel counts unless `config.image_channels` is set). A file PIL
cannot read raises an `ImageDecodeError` naming it: before training the scan reports it, and
mid-run the pipeline skips it with a warning (`vision_jax.data.skipped`); never silently.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from vision_jax.data.skipped import UnreadableFile

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
FLAT_LAYOUT_TEST_FRACTION = 0.2
FLAT_LAYOUT_SEED = 0

_MODE_FOR_CHANNELS = {1: "L", 3: "RGB", 4: "RGBA"}
# PIL modes that hold one grey value per pixel; everything else is read as colour.
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
# What PIL raises on unreadable or truncated files.
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


class ImageDecodeError(UnreadableFile):
    """An image file could not be decoded; the message names the file (`path`)."""


@dataclasses.dataclass(frozen=True)
class FolderIndex:
    """The files of a folder dataset: class names and, per split, (path, label) pairs."""

    root: str
    layout: str  # "split" or "flat"
    class_names: tuple[str, ...]
    splits: dict[str, tuple[tuple[str, int], ...]]


def _image_files(directory: str) -> list[str]:
    return sorted(
        name for name in os.listdir(directory)
        if name.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(directory, name))
    )


def _subdirectories(directory: str) -> list[str]:
    return sorted(
        name for name in os.listdir(directory) if os.path.isdir(os.path.join(directory, name))
    )


def _classes_with_images(directory: str) -> dict[str, list[str]]:
    """{class name: sorted image file paths} for the subfolders of `directory` holding images."""
    classes = {}
    for name in _subdirectories(directory):
        files = _image_files(os.path.join(directory, name))
        if files:
            classes[name] = [os.path.join(directory, name, f) for f in files]
    return classes


def _flat_split(files: list[str], seed: int) -> dict[str, list[str]]:
    order = np.random.default_rng(seed).permutation(len(files))
    num_test = int(round(FLAT_LAYOUT_TEST_FRACTION * len(files)))
    test = sorted(files[i] for i in order[:num_test])
    train = sorted(files[i] for i in order[num_test:])
    return {"train": train, "test": test}


@functools.lru_cache(maxsize=16)
def index_folder(root: str) -> FolderIndex:
    """Lists a folder dataset (see the module docstring for the layouts). Cached per root."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"folder dataset root {root!r} is not a directory")
    flat_classes = _classes_with_images(root)
    if flat_classes:
        class_names = tuple(flat_classes)
        splits: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
        for label, name in enumerate(class_names):
            # Seeded per class, so adding a class does not reshuffle the others.
            for split, files in _flat_split(flat_classes[name], FLAT_LAYOUT_SEED + label).items():
                splits[split].extend((path, label) for path in files)
        layout = "flat"
    else:
        per_split = {s: _classes_with_images(os.path.join(root, s)) for s in _subdirectories(root)}
        per_split = {s: classes for s, classes in per_split.items() if classes}
        if not per_split:
            raise FileNotFoundError(
                f"folder dataset root {root!r} has no images in root/<class>/ or "
                f"root/<split>/<class>/ (looked for {', '.join(IMAGE_SUFFIXES)})")
        class_names = tuple(sorted({name for classes in per_split.values() for name in classes}))
        label_of = {name: label for label, name in enumerate(class_names)}
        splits = {
            split: [(path, label_of[name]) for name in sorted(classes) for path in classes[name]]
            for split, classes in per_split.items()
        }
        layout = "split"
    return FolderIndex(
        root=root, layout=layout, class_names=class_names,
        splits={split: tuple(items) for split, items in splits.items()},
    )


def _open_image(path: str) -> Image.Image:
    try:
        return Image.open(path)
    except _DECODE_ERRORS as error:
        raise ImageDecodeError(
            f"cannot read image file {path}: {error}; fix or delete the file", path) from error


def channels_of_mode(mode: str) -> int:
    """Channel count this module converts a PIL image of `mode` to when not told otherwise."""
    return 1 if mode in _GRAY_MODES else 3


@functools.lru_cache(maxsize=16)
def _image_sizes(root: str) -> frozenset[tuple[int, int]]:
    """All (width, height) in the dataset, from file headers only (no pixel decoding)."""
    sizes = set()
    for items in index_folder(root).splits.values():
        for path, _ in items:
            with _open_image(path) as image:
                sizes.add(image.size)
    return frozenset(sizes)


def decode_image(path: str, channels: int) -> np.ndarray:
    """The image at `path` as a uint8 (H, W, channels) array."""
    with _open_image(path) as image:
        try:
            image.load()
            pixels = np.asarray(image.convert(_MODE_FOR_CHANNELS[channels]))
        except _DECODE_ERRORS as error:
            raise ImageDecodeError(
                f"cannot decode image file {path}: {error}; fix or delete the file",
                path) from error
    return pixels.reshape(pixels.shape[0], pixels.shape[1], channels)


class FolderSource:
    """Random-access source of one split: records ``{"image": uint8 HWC, "label": int}``."""

    def __init__(self, root: str, split: str, *, channels: int | None = None):
        self.root = os.path.abspath(root)
        index = index_folder(self.root)
        if split not in index.splits:
            raise KeyError(
                f"split {split!r} not in folder dataset {self.root} "
                f"(available: {', '.join(sorted(index.splits))})")
        if channels is None:
            first_path = next(path for s in sorted(index.splits) for path, _ in index.splits[s])
            with _open_image(first_path) as image:
                channels = channels_of_mode(image.mode)
        if channels not in _MODE_FOR_CHANNELS:
            raise ValueError(f"channels={channels} is not supported; use 1, 3 or 4")
        self.split = split
        self.channels = channels
        self.class_names = index.class_names
        self.split_sizes = {name: len(items) for name, items in index.splits.items()}
        self._items = index.splits[split]

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> dict:
        path, label = self._items[index]
        return {"image": decode_image(path, self.channels), "label": label}

    def image_shape(self) -> tuple[int, int, int] | None:
        """(H, W, C) when every image of every split has the same size, else None.

        Reads every file's header once (cached); an unreadable file raises here,
        before any training starts.
        """
        sizes = _image_sizes(self.root)
        if len(sizes) != 1:
            return None
        (width, height), = sizes
        return (height, width, self.channels)

    def __repr__(self) -> str:
        return f"FolderSource(root={self.root!r}, split={self.split!r}, len={len(self)})"
