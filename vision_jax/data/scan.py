"""A bounded content check of a folder dataset, run once before anything is compiled.

Listing a folder only reads names, so problems inside the files used to surface mid-run as
tracebacks (a JPEG truncated after its header), or not at all (one greyscale file among RGB
ones set the channel count of the whole dataset; an empty class folder vanished and the
class count that followed did not say why). `scan_folder` decodes every image, or an evenly
spaced sample of `SCAN_LIMIT` for large datasets, and raises one `ValueError` line for the
first problem, naming the file or folder and the fix. (A one-class folder is the task's
business: detection trains one class legitimately.) With ``config.image_channels`` set, files
of other channel counts are converted, so a mix is no error.

Image + annotation datasets (``segmentation_folder:``, ``coco:``) are checked by
`scan_examples` once the task is known: each sampled record goes through the run's decode and
the task's own record -> example step, which finds truncated images and masks, RGB masks and
mask values outside the mapping. (Mask sizes against their images, and COCO entries, are
checked when the dataset is indexed.) A file that still fails mid-run is skipped and counted
(`vision_jax.data.skipped`).
"""

from __future__ import annotations

import functools
import os
from typing import Any

from PIL import Image

from vision_jax.data import folder as folder_lib
from vision_jax.data import sources
from vision_jax.data.paths import resolve_dataset_dir
from vision_jax.data.skipped import UnreadableFile

SCAN_LIMIT = 2000  # files decoded at most; a larger dataset is sampled evenly
_NAMES = {1: "greyscale", 3: "colour"}
EXAMPLE_SCAN_SCHEMES = ("segmentation_folder", "coco")


def empty_class_folders(root: str) -> list[str]:
    """Subfolders a class folder would be (of `root`, or of its split folders) that hold no
    image; listing skips them, which silently drops a class."""
    flat = folder_lib._classes_with_images(root)  # noqa: SLF001 - the layout rule itself
    parents = [root] if flat else [os.path.join(root, s)
                                   for s in folder_lib._subdirectories(root)]  # noqa: SLF001
    empty = []
    for parent in parents:
        for name in folder_lib._subdirectories(parent):  # noqa: SLF001
            path = os.path.join(parent, name)
            holds_nothing = not (folder_lib._image_files(path)  # noqa: SLF001
                                 or folder_lib._subdirectories(path))  # noqa: SLF001
            if holds_nothing:
                empty.append(path)
    return empty


def _sample(paths: list[str], limit: int) -> list[str]:
    if len(paths) <= limit:
        return paths
    step = len(paths) / limit
    return [paths[int(i * step)] for i in range(limit)]


def _decode(path: str, where: str) -> int:
    """The channel count `folder` gives the file by default; raises on a file PIL cannot
    fully decode."""
    try:
        with Image.open(path) as image:
            image.load()
            return folder_lib.channels_of_mode(image.mode)
    except folder_lib._DECODE_ERRORS as error:  # noqa: SLF001 - the same errors as reading
        raise ValueError(f"{where}: cannot decode image file {path}: {error}; fix or "
                         "delete the file") from None


@functools.lru_cache(maxsize=16)
def scan_folder(root: str, where: str, limit: int = SCAN_LIMIT,
                channels: int | None = None) -> dict[int, int]:
    """{channel count: files} over the scanned files of the folder dataset at `root`; `where`
    starts each error (e.g. "config.dataset='folder:pets'"). With `channels` given every file
    is converted to it, so mixed channel counts are no error."""
    index = folder_lib.index_folder(os.path.abspath(root))
    empty = empty_class_folders(root)
    if empty:
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise ValueError(f"{where}: class folder {empty[0]}{more} has no images "
                         f"({', '.join(folder_lib.IMAGE_SUFFIXES)}); add images or remove it")
    paths = sorted(path for items in index.splits.values() for path, _ in items)
    found: dict[int, list[str]] = {}
    for path in _sample(paths, limit):
        found.setdefault(_decode(path, where), []).append(path)
    if len(found) > 1 and not channels:
        # The dataset's channel count is its first file's: the others would be converted to
        # it, e.g. every colour image to grey.
        odd = min(found, key=lambda c: len(found[c]))
        counts = ", ".join(f"{len(found[c])} {_NAMES[c]}" for c in sorted(found))
        raise ValueError(
            f"{where}: images mix channel counts ({counts}; e.g. {found[odd][0]} is "
            f"{_NAMES[odd]}); save every image with the same channels, or set "
            "config.image_channels (1 or 3) to convert them")
    return {c: len(files) for c, files in found.items()}


def scan_dataset(dataset: str, data_dir: str | None, channels: int | None = None) -> None:
    """`scan_folder` for a ``folder:`` dataset (resolved as the data layer does), converting
    to `channels` (``config.image_channels``) when given; see `scan_examples` for the others."""
    scheme, rest = sources.parse_dataset(dataset)
    if scheme == "folder":
        root = resolve_dataset_dir(scheme, rest, data_dir or None, "class folders")
        scan_folder(root, f"config.dataset={dataset!r}", SCAN_LIMIT, channels or None)


def scan_examples(data: Any, spec: Any) -> None:
    """The content check of the image + annotation file datasets (``segmentation_folder:``,
    ``coco:``): every record of the train and eval splits, or an evenly spaced sample of
    `SCAN_LIMIT`, goes through the run's own decode and the task's `spec.select` (so a mask
    value outside ``config.segmentation.mask_mapping`` or an RGB trimap is found, as it
    would be mid-run); the first failure is one `ValueError` line naming the file.
    `data` is the run's `DataSection`, `spec` its task's `ExampleSpec`."""
    scheme, _ = sources.parse_dataset(data.dataset)
    if scheme not in EXAMPLE_SCAN_SCHEMES:
        return  # folder: decoded by `scan_dataset`; TFDS and built-in data by their builder
    splits = {"config.train_split": data.train_split, "config.eval_split": data.eval_split}
    opened, _ = sources.open_splits(data.dataset, splits, data.data_dir,
                                    data.image_channels or None)
    records = [(source, i) for _, source in sorted(opened.items())
               for i in range(len(source))]
    where = f"config.dataset={data.dataset!r}"
    for source, i in _sample(records, SCAN_LIMIT):
        try:
            spec.select(source[i])
        except UnreadableFile as error:
            raise ValueError(f"{where}: {error}") from None
