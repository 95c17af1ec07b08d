"""`builtin:shapes_multilabel`: which shape classes appear in a scene, a built-in, offline
multi-label dataset.

64x64 RGB scenes of 1-4 flat-coloured circles, squares and triangles over textured
backgrounds (the detection scenes of `shapes_scenes`, smaller and with fewer shapes so that
every subset of classes is common), generated from fixed seeds: every build is identical and
needs no download and no TensorFlow. The TFDS builder name is
`vision_jax_shapes_multilabel`.

Features, in the layout of the TFDS catalog's VOC `labels` feature:
  image    (64, 64, 3) uint8
  labels   Sequence(ClassLabel): the sorted, distinct classes visible in the image,
           0 circle, 1 square, 2 triangle (a shape hidden below others is removed from the
           scene before it is drawn, so a listed class is always visible)

`vision_jax.data.multilabel.multi_hot_record` turns a record into {"image", "labels":
multi-hot}. Splits: train 4,000 and test 1,000 examples.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from vision_jax.data.builtin import shapes_scenes
from vision_jax.data.registry import register_builtin

IMAGE_SIZE = 64
MAX_OBJECTS = 4
CLASS_NAMES = shapes_scenes.DEFAULT_CLASSES
SPLIT_SIZES = {"train": 4_000, "test": 1_000}

# One generator per (dataset, split, index): reproducible, and any example can be
# regenerated alone.
_DATASET_SEED = 20_261_116
_SPLIT_SEEDS = {"train": 0, "test": 1}


def generate_example(split: str, index: int) -> dict:
    """Example `index` of `split`: {"image": uint8 HWC, "labels": sorted class ids (int64),
    "scene": the `generate_scene` dict it comes from}."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"split={split!r} is not one of {tuple(SPLIT_SIZES)}")
    rng = np.random.default_rng([_DATASET_SEED, _SPLIT_SEEDS[split], index])
    scene = shapes_scenes.generate_scene(rng, image_size=IMAGE_SIZE, max_objects=MAX_OBJECTS)
    # Scene class ids are 1..K (0 is background); dataset labels are 0-based.
    labels = np.unique(np.asarray(scene["labels"], np.int64) - 1)
    return {"image": scene["image"], "labels": labels, "scene": scene}


class ShapesMultilabel(tfds.core.GeneratorBasedBuilder):
    """Procedural shape scenes labelled with the set of shape classes they show."""

    # Prefixed so it cannot clash with a TFDS catalog name in a shared data_dir.
    name = "vision_jax_shapes_multilabel"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def _info(self) -> tfds.core.DatasetInfo:
        # Built directly rather than via `dataset_info_from_configs`, which reads
        # metadata files from the module's folder that a package module lacks.
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
                "labels": tfds.features.Sequence(tfds.features.ClassLabel(names=CLASS_NAMES)),
            }),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager  # everything is generated; nothing is downloaded
        return {split: self._generate_examples(split) for split in SPLIT_SIZES}

    def _generate_examples(self, split: str) -> Iterator[tuple[int, dict]]:
        for index in range(SPLIT_SIZES[split]):
            example = generate_example(split, index)
            yield index, {"image": shapes_scenes.encode_png(example["image"]),
                          "labels": example["labels"]}


register_builtin("shapes_multilabel", ShapesMultilabel)
