"""`builtin:shapes_segmentation`: a built-in, offline semantic segmentation dataset.

64x64 RGB scenes of 1-4 flat-coloured circles, squares and triangles over
textured backgrounds (see `shapes_scenes`), generated from fixed seeds, so every
build is identical and needs no download and no TensorFlow.
The TFDS builder name is `vision_jax_shapes_segmentation` (e.g. for `tfds.data_source`).

Features (decoded through `as_data_source()`; all uint8):
  image             (64, 64, 3)
  segmentation_mask (64, 64, 1)  class mask, the default target:
                                  0 background, 1 circle, 2 square, 3 triangle
  trimap            (64, 64, 1)  Oxford-IIIT Pet convention: 1 object, 2 background,
                                  3 border (a 2-pixel band along every visible boundary)

Splits: train 2,000 and test 500 examples; `supervised_keys` is
`("image", "segmentation_mask")`. Use the trimap for Pet-style 3-class training.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from vision_jax.data.builtin import shapes_scenes
from vision_jax.data.registry import register_builtin

IMAGE_SIZE = 64
MAX_OBJECTS = 4
SIZE_RANGE = (0.1, 0.25)  # bigger than the scene default: ~20% of pixels are objects
CLASS_NAMES = ("background", *shapes_scenes.DEFAULT_CLASSES)
SPLIT_SIZES = {"train": 2_000, "test": 500}

# Every example has its own generator seeded by (dataset, split, index): builds are
# reproducible and any single example can be regenerated without the others.
_DATASET_SEED = 20_240_601
_SPLIT_SEEDS = {"train": 0, "test": 1}


def generate_example(split: str, index: int) -> dict:
    """The scene behind example `index` of `split` (NumPy arrays, see `generate_scene`)."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"split={split!r} is not one of {tuple(SPLIT_SIZES)}")
    rng = np.random.default_rng([_DATASET_SEED, _SPLIT_SEEDS[split], index])
    return shapes_scenes.generate_scene(
        rng, image_size=IMAGE_SIZE, max_objects=MAX_OBJECTS, size_range=SIZE_RANGE
    )


class ShapesSegmentation(tfds.core.GeneratorBasedBuilder):
    """Procedural shapes with exact class masks and Pet-style trimaps."""

    # Prefixed so it cannot clash with a TFDS catalog name in a shared data_dir.
    name = "vision_jax_shapes_segmentation"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def _info(self) -> tfds.core.DatasetInfo:
        # Built directly rather than via `dataset_info_from_configs`, which reads
        # metadata files from the module's folder that a package module lacks.
        mask_shape = (IMAGE_SIZE, IMAGE_SIZE, 1)
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
                    "segmentation_mask": tfds.features.Image(shape=mask_shape),
                    "trimap": tfds.features.Image(shape=mask_shape),
                }
            ),
            supervised_keys=("image", "segmentation_mask"),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager  # everything is generated; nothing is downloaded
        return {split: self._generate_examples(split) for split in SPLIT_SIZES}

    def _generate_examples(self, split: str) -> Iterator[tuple[int, dict]]:
        for index in range(SPLIT_SIZES[split]):
            scene = generate_example(split, index)
            yield (
                index,
                {
                    "image": shapes_scenes.encode_png(scene["image"]),
                    "segmentation_mask": shapes_scenes.encode_png(scene["class_mask"]),
                    "trimap": shapes_scenes.encode_png(scene["trimap"]),
                },
            )


register_builtin("shapes_segmentation", ShapesSegmentation)
