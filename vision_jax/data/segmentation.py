"""Segmentation data: an image + mask folder source, mask-value mapping, and
the `ExampleSpec` that turns records into ``{"image", "segmentation"}`` examples. Resizing,
batching and the (on-device) augmentations are the shared ones.

Folder layout (``segmentation_folder:<path>``), the Oxford-IIIT Pet one and its generalisation::

    root/images/<stem>.jpg|.jpeg|.png
    root/annotations/trimaps/<stem>.png     (Pet) -- or root/annotations/<stem>.png
    root/annotations/trainval.txt, test.txt (optional, Pet: first word of a line = stem)

or the same pair of folders under each split folder: ``root/<split>/images`` and
``root/<split>/annotations[/trimaps]``. Without split folders the splits are the Pet list files
(``train`` = trainval.txt, ``test`` = test.txt) when both exist, else a seeded 80/20
``train``/``test`` split of the sorted stems (depends only on the file names).

Images and masks pair by file stem. Hidden files (such as the ``._*`` resource forks in the Pet
archive) and other suffixes are skipped. Every image needs exactly one mask and every mask an
image of the same width and height; a violation raises an error naming the file before
training starts (sizes come from the file headers). Masks are single-channel (grey or
palette) PNGs holding raw values.

Mask values become classes through ``config.segmentation.mask_mapping`` ({raw value: class},
a class may be the ignore label); when it is empty, Oxford-IIIT Pet trimaps (``tfds:
oxford_iiit_pet`` or a folder with ``annotations/trimaps``) map 1 (pet) -> 0, 2 (background) ->
1, 3 (border) -> 2, i.e. trimap - 1, and anything else maps each value v to class v. A value
outside the mapping is an error naming the file (``config.segmentation.unmapped = "error"``) or
becomes the ignore label (``"ignore"``). The pre-run scan (`vision_jax.data.scan.scan_examples`)
finds such masks, and unreadable or RGB ones, before compiling; one that fails mid-run is a
`BadMaskFile`, which the pipeline skips and counts (`vision_jax.data.skipped`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from vision_jax.data.folder import decode_image
from vision_jax.data.paths import resolve_dataset_dir
from vision_jax.data.pipeline import ExampleSpec
from vision_jax.data.skipped import UnreadableFile
from vision_jax.data.sources import DatasetInfo, _check_split
from vision_jax.data.transforms import resize_mask  # noqa: F401 - the segmentation task's import

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MASK_SUFFIXES = (".png",)
TEST_FRACTION = 0.2
SPLIT_SEED = 0
PET_LISTS = {"train": "trainval.txt", "test": "test.txt"}
TRIMAP_MAPPING = {1: 0, 2: 1, 3: 2}  # Oxford-IIIT Pet: pet, background, border
MASK_KEY = "segmentation_mask"  # the record key of raw masks (as in TFDS Pet and shapes)
_MODES = {1: "L", 3: "RGB", 4: "RGBA"}
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError)


class SegmentationDataError(ValueError):
    """A malformed image/mask folder or mask; the message names the file."""


class BadMaskFile(SegmentationDataError, UnreadableFile):
    """A mask file that cannot be read or holds values the mapping does not map: reported by
    the pre-run scan, skipped mid-run (`vision_jax.data.skipped`)."""


# -- folder index --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PairIndex:
    """Image/mask path pairs per split, and whether the masks are Pet trimaps."""

    root: str
    trimaps: bool
    splits: dict[str, tuple[tuple[str, str], ...]]


def _files_by_stem(directory: str, suffixes: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in sorted(os.listdir(directory)):
        path = os.path.join(directory, name)
        if name.startswith(".") or not name.lower().endswith(suffixes) or not os.path.isfile(path):
            continue
        stem = os.path.splitext(name)[0]
        if stem in found:
            raise SegmentationDataError(
                f"{path} and {found[stem]} have the same stem {stem!r}; keep one of them")
        found[stem] = path
    return found


def _mask_directory(pair_root: str) -> tuple[str, bool]:
    annotations = os.path.join(pair_root, "annotations")
    trimaps = os.path.join(annotations, "trimaps")
    if os.path.isdir(trimaps):
        return trimaps, True
    if os.path.isdir(annotations):
        return annotations, False
    raise FileNotFoundError(f"{pair_root} has no annotations/ folder (masks: annotations/<stem>"
                            ".png or annotations/trimaps/<stem>.png)")


def _pairs(pair_root: str) -> tuple[dict[str, tuple[str, str]], bool]:
    """{stem: (image path, mask path)}; every image has a mask and every mask an image."""
    image_dir = os.path.join(pair_root, "images")
    if not os.path.isdir(image_dir):
        raise FileNotFoundError(f"{pair_root} has no images/ folder")
    mask_dir, trimaps = _mask_directory(pair_root)
    images = _files_by_stem(image_dir, IMAGE_SUFFIXES)
    masks = _files_by_stem(mask_dir, MASK_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"{image_dir} holds no {'/'.join(IMAGE_SUFFIXES)} images")
    for stem, path in images.items():
        if stem not in masks:
            raise FileNotFoundError(
                f"image {path} has no mask {os.path.join(mask_dir, stem + '.png')}; add the mask "
                "or remove the image")
    for stem, path in masks.items():
        if stem not in images:
            raise SegmentationDataError(
                f"mask {path} has no image {os.path.join(image_dir, stem)}.jpg/.png; add the image "
                "or remove the mask")
    return {stem: (images[stem], masks[stem]) for stem in sorted(images)}, trimaps


def _seeded_split(stems: list[str]) -> dict[str, list[str]]:
    order = np.random.default_rng(SPLIT_SEED).permutation(len(stems))
    num_test = int(round(TEST_FRACTION * len(stems)))
    return {"train": sorted(stems[i] for i in order[num_test:]),
            "test": sorted(stems[i] for i in order[:num_test])}


def _list_split(root: str, pairs: Mapping[str, tuple[str, str]]) -> dict[str, list[str]] | None:
    """Splits from the Pet list files, or None when the folder has none."""
    paths = {s: os.path.join(root, "annotations", f) for s, f in PET_LISTS.items()}
    if not all(os.path.isfile(p) for p in paths.values()):
        return None
    splits = {}
    for split, path in paths.items():
        with open(path) as f:
            stems = [line.split()[0] for line in f if line.strip() and not line.startswith("#")]
        for stem in stems:
            if stem not in pairs:
                raise FileNotFoundError(f"{path} lists {stem!r} but images/{stem}.jpg and its mask "
                                        "are missing; fix the list or add the files")
        splits[split] = stems
    return splits


def _check_sizes(pairs: list[tuple[str, str]]) -> None:
    """Every mask has its image's size (headers only, no decoding)."""
    for image_path, mask_path in pairs:
        with _open(image_path) as image, _open(mask_path) as mask:
            if image.size != mask.size:
                raise SegmentationDataError(
                    f"mask {mask_path} is {mask.size[0]}x{mask.size[1]} but image {image_path} is "
                    f"{image.size[0]}x{image.size[1]} (width x height); masks must match their "
                    "image")


@functools.lru_cache(maxsize=8)
def index_pairs(root: str) -> PairIndex:
    """Lists and checks a segmentation folder (see the module docstring). Cached per root."""
    if not os.path.isdir(root):
        raise FileNotFoundError(f"segmentation folder {root!r} is not a directory")
    if os.path.isdir(os.path.join(root, "images")):
        pairs, trimaps = _pairs(root)
        stems = _list_split(root, pairs) or _seeded_split(list(pairs))
        splits = {s: tuple(pairs[stem] for stem in names) for s, names in stems.items()}
    else:
        split_roots = [d for d in sorted(os.listdir(root))
                       if os.path.isdir(os.path.join(root, d, "images"))]
        if not split_roots:
            raise FileNotFoundError(
                f"{root} has neither images/ + annotations/ nor <split>/images/ + "
                "<split>/annotations/ folders")
        splits, kinds = {}, set()
        for split in split_roots:
            pairs, trimaps = _pairs(os.path.join(root, split))
            splits[split] = tuple(pairs.values())
            kinds.add(trimaps)
        trimaps = kinds == {True}
    for items in splits.values():
        _check_sizes(list(items))
    return PairIndex(root=root, trimaps=trimaps, splits=splits)


# -- decoding and the source ---------------------------------------------------------------------


def _open(path: str) -> Image.Image:
    try:
        return Image.open(path)
    except _DECODE_ERRORS as error:
        raise BadMaskFile(f"cannot read {path}: {error}; fix or delete it", path) from None


def decode_mask(path: str) -> np.ndarray:
    """Raw mask values as an (H, W, 1) array (uint8, or int32 for 16-bit masks)."""
    with _open(path) as mask:
        if mask.mode not in ("L", "P", "1", "I", "I;16", "I;16B", "I;16L"):
            raise BadMaskFile(
                f"mask {path} has mode {mask.mode}; masks must be single-channel (grey or "
                "palette) images of class values", path)
        try:
            values = np.asarray(mask)
        except _DECODE_ERRORS as error:  # the header read, the pixels did not
            raise BadMaskFile(f"cannot decode mask {path}: {error}; fix or delete it",
                              path) from None
    values = values.astype(np.uint8) if values.dtype in (np.bool_, np.uint8) else values.astype(
        np.int32)
    return values[..., None]


class SegmentationFolderSource:
    """One split of a segmentation folder: records ``{"image": uint8 HWC,
    "segmentation_mask": raw (H, W, 1), "file_name": image path}``."""

    def __init__(self, root: str, split: str, channels: int = 3):
        if channels not in _MODES:
            raise ValueError(f"channels={channels} is not supported; use 1, 3 or 4")
        self.root, self.split, self.channels = root, split, channels
        self._items = index_pairs(root).splits[split]

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image_path, mask_path = self._items[index]
        return {"image": decode_image(image_path, self.channels),
                MASK_KEY: decode_mask(mask_path), "file_name": mask_path}

    def __repr__(self) -> str:
        return f"SegmentationFolderSource({self.root!r}, split={self.split!r}, len={len(self)})"


def resolve_folder(path: str, data_dir: str | None) -> str:
    """The directory of ``segmentation_folder:<path>``."""
    return resolve_dataset_dir("segmentation_folder", path, data_dir,
                               "images/ and annotations/")


def open_segmentation_folder(path: str, splits: Mapping[str, str], data_dir: str | None,
                             channels: int | None = None
                             ) -> tuple[dict[str, SegmentationFolderSource], DatasetInfo]:
    """The `segmentation_folder:` scheme of `vision_jax.data.sources.open_splits`."""
    root = resolve_folder(path, data_dir)
    try:
        index = index_pairs(root)
    except (FileNotFoundError, SegmentationDataError) as error:
        raise type(error)(f"config.dataset='segmentation_folder:{path}': {error}") from None
    sizes = {name: len(items) for name, items in index.splits.items()}
    for field, split in splits.items():
        _check_split(split, sizes, field, allow_slices=False)
    channels = channels or 3  # Pet mixes grey, RGB and RGBA files: read all as RGB
    sources = {s: SegmentationFolderSource(root, s, channels) for s in splits.values()}
    info = DatasetInfo(name=f"segmentation_folder:{path}", num_classes=None, class_names=None,
                       image_shape=None, split_sizes=sizes, num_channels=channels)
    return sources, info


# -- mask values -> classes ----------------------------------------------------------------------


def is_pet_trimap_dataset(dataset: str, data_dir: str | None = None) -> bool:
    """Whether `dataset`'s masks are Oxford-IIIT Pet trimaps (1 pet, 2 background, 3 border)."""
    scheme, _, rest = dataset.partition(":")
    if scheme == "tfds":
        return rest.split(":")[0] == "oxford_iiit_pet"
    if scheme == "segmentation_folder":
        try:
            return index_pairs(resolve_folder(rest, data_dir or None)).trimaps
        except (FileNotFoundError, SegmentationDataError):
            return False  # the data checks report it with their own message
    return False


def mask_lookup(mapping: Mapping[Any, int] | None, num_classes: int, ignore_label: int
                ) -> np.ndarray:
    """A table raw value -> class (-1 = unmapped) for raw values 0..65535.

    Empty `mapping`: identity for 0..num_classes-1, and the ignore label to itself.
    """
    table = np.full(65536, -1, np.int32)
    if mapping:
        for raw, cls in mapping.items():
            table[int(raw)] = int(cls)
    else:
        table[:num_classes] = np.arange(num_classes)
        table[ignore_label] = ignore_label
    return table


@dataclasses.dataclass(frozen=True)
class SelectSegmentation:
    """Record -> ``{"image", "segmentation": uint8 (H, W) classes}``, through the lookup table."""

    lookup: np.ndarray
    ignore_label: int
    mask_key: str = MASK_KEY
    unmapped: str = "error"  # or "ignore"

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.mask_key not in record:
            raise KeyError(f"config.segmentation.mask_key={self.mask_key!r} is not a feature of "
                           f"the dataset (features: {sorted(record)})")
        raw = np.asarray(record[self.mask_key])
        raw = raw[..., 0] if raw.ndim == 3 else raw
        classes = self.lookup[np.clip(raw, 0, len(self.lookup) - 1).astype(np.int64)]
        bad = (classes < 0) | (raw < 0) | (raw >= len(self.lookup))
        if bad.any():
            if self.unmapped == "error":
                values = np.unique(raw[bad])[:10].tolist()
                where = record.get("file_name", "a record")
                if isinstance(where, bytes):
                    where = where.decode()
                raise BadMaskFile(
                    f"mask {where} has value(s) {values} that config.segmentation.mask_mapping "
                    "does not map; add them to the mapping or set "
                    "config.segmentation.unmapped='ignore'", str(where))
            classes = np.where(bad, self.ignore_label, classes)
        return {"image": record["image"], "segmentation": classes.astype(np.uint8)}


# -- the ExampleSpec ------------------------------------------------------------------------------


def segmentation_spec(num_classes: int, *, dataset: str = "", data_dir: str = "",
                      ignore_label: int = 255, mask_mapping: Mapping[Any, int] | None = None,
                      mask_key: str = MASK_KEY, unmapped: str = "error") -> ExampleSpec:
    """How the pipeline builds segmentation batches (see the module docstring): examples carry
    a uint8 class map; pixels a transform brings in are the ignore label. An empty
    `mask_mapping` of a Pet-trimap `dataset` maps the trimaps (`TRIMAP_MAPPING`)."""
    if not mask_mapping and is_pet_trimap_dataset(dataset, data_dir):
        mask_mapping = TRIMAP_MAPPING
    select = SelectSegmentation(lookup=mask_lookup(mask_mapping, num_classes, ignore_label),
                                ignore_label=ignore_label, mask_key=mask_key,
                                unmapped=unmapped)
    return ExampleSpec(select=select, keys=frozenset({"segmentation"}), mask_fill=ignore_label)
