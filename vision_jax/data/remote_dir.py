"""A `gs://` TFDS data_dir, read and written through a local mirror.

TFDS keeps a prepared dataset as array_record files, and array_record reads and writes
them with its own C++ file I/O, which opens local paths only (TensorFlow would not change
that: it is not TFDS' file layer that fails). So a remote data_dir is mirrored: the files
it holds are downloaded once into a local cache (`VJ_DATA_CACHE`, default
`~/.cache/vision_jax/data_dirs`), the dataset is opened (or, for a built-in dataset,
generated) there, and whatever the mirror then holds that the bucket lacks is uploaded,
so the next VM, or every host of a pod, finds it prepared in the bucket.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

from etils import epath

from vision_jax import paths

CACHE_ENV = "VJ_DATA_CACHE"


def cache_root() -> epath.Path:
    return paths.as_path(os.environ.get(CACHE_ENV) or "~/.cache/vision_jax/data_dirs")


def mirror_path(data_dir: str) -> epath.Path:
    """Where `gs://bucket/some/dir` is mirrored: `<cache>/gs/bucket/some/dir`."""
    scheme, _, rest = data_dir.partition("://")
    return cache_root() / scheme / rest.strip("/")


def _files(root: epath.Path) -> Iterator[tuple[str, epath.Path]]:
    """(path relative to `root`, path) of every file below `root`, skipping hidden files
    (lock files) and TFDS' unfinished `incomplete.*` folders. (`epath.Path.walk` yields
    GCS folders without their `gs://`, hence a walk of our own.)"""
    if not root.exists():
        return
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        for child in folder.iterdir():
            if child.name.startswith((".", "incomplete.")):
                continue
            if child.is_dir():
                pending.append((child, f"{prefix}{child.name}/"))
            else:
                yield f"{prefix}{child.name}", child


def _sizes(root: epath.Path) -> dict[str, int]:
    return {relative: path.stat().length for relative, path in _files(root)}


def _copy(source: epath.Path, target: epath.Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    # Unique per writer: the processes of one job may mirror the same file at once. A GCS
    # upload appears whole or not at all.
    partial = target if paths.is_remote(target) else target.with_name(
        f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    partial.write_bytes(source.read_bytes())
    if partial != target:
        partial.replace(target)


def download(data_dir: str) -> str:
    """Mirrors remote `data_dir` locally (files missing or of another size) and returns the
    local directory to give TFDS."""
    remote, local = epath.Path(data_dir), mirror_path(data_dir)
    local.mkdir(parents=True, exist_ok=True)
    have = _sizes(local)
    for relative, path in _files(remote):
        if have.get(relative) != path.stat().length:
            _copy(path, local / relative)
    return os.fspath(local)


def upload(data_dir: str) -> None:
    """Uploads what the local mirror of `data_dir` holds and the bucket does not."""
    remote, local = epath.Path(data_dir), mirror_path(data_dir)
    have = _sizes(remote)
    for relative, path in _files(local):
        if have.get(relative) != path.stat().length:
            _copy(path, remote / relative)


def open_mirrored(opener, rest: str, splits, data_dir: str, channels):
    """`opener` (a `SCHEMES` entry) on the local mirror of `data_dir`; what opening it
    prepared there (a built-in dataset generated on first use) is uploaded afterwards."""
    result = opener(rest, splits, download(data_dir), channels)
    upload(data_dir)
    return result
