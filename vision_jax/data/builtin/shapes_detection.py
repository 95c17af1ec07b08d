"""`builtin:shapes_detection`: a built-in, offline object detection dataset.

96x96 RGB scenes of 1-6 flat-coloured circles, squares and triangles over
textured backgrounds, overlapping by chance (see `shapes_scenes`), generated from
fixed seeds, so every build is identical and needs no download and no TensorFlow.
The TFDS builder name is `vision_jax_shapes_detection` (e.g. for `tfds.data_source`).

Features, in the layout of the TFDS catalog's detection datasets (VOC, COCO):
  image            (96, 96, 3) uint8
  objects/bbox     BBoxFeature: float32 [ymin, xmin, ymax, xmax], normalised to [0, 1]
                   by the image size, tight around the object's *visible* pixels,
                   pixel-edge convention: ymax = (last visible row + 1) / 96
  objects/label    ClassLabel, 0-based without background: 0 circle, 1 square, 2 triangle
                   (the scene's class id minus one)

Decoded through `as_data_source()` (NumPy), a `Sequence` comes back as Python
lists: `objects["bbox"]` is a list of (4,) float32 arrays and `objects["label"]` a
list of int64; `np.asarray(objects["bbox"], np.float32).reshape(-1, 4)` stacks them.
Every image has at least one object.

Splits: train 2,000 and test 500 examples.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from vision_jax.data.builtin import shapes_scenes
from vision_jax.data.registry import register_builtin

IMAGE_SIZE = 96
MAX_OBJECTS = 6
CLASS_NAMES = shapes_scenes.DEFAULT_CLASSES
SPLIT_SIZES = {"train": 2_000, "test": 500}

# Every example has its own generator seeded by (dataset, split, index): builds are
# reproducible and any single example can be regenerated without the others.
_DATASET_SEED = 20_240_602
_SPLIT_SEEDS = {"train": 0, "test": 1}


def generate_example(split: str, index: int) -> dict:
    """The scene behind example `index` of `split` (NumPy arrays, see `generate_scene`)."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"split={split!r} is not one of {tuple(SPLIT_SIZES)}")
    rng = np.random.default_rng([_DATASET_SEED, _SPLIT_SEEDS[split], index])
    return shapes_scenes.generate_scene(rng, image_size=IMAGE_SIZE, max_objects=MAX_OBJECTS)


def normalized_yxyx(boxes_xyxy: np.ndarray, image_size: int) -> np.ndarray:
    """(N, 4) pixel-edge xyxy boxes -> (N, 4) float32 [ymin, xmin, ymax, xmax] in [0, 1]."""
    x_min, y_min, x_max, y_max = np.moveaxis(np.asarray(boxes_xyxy, np.float64), -1, 0)
    yxyx = np.stack([y_min, x_min, y_max, x_max], axis=-1) / image_size
    return yxyx.astype(np.float32)


class ShapesDetection(tfds.core.GeneratorBasedBuilder):
    """Procedural shapes with exact, tight bounding boxes of their visible pixels."""

    # Prefixed so it cannot clash with a TFDS catalog name in a shared data_dir.
    name = "vision_jax_shapes_detection"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def _info(self) -> tfds.core.DatasetInfo:
        # Built directly rather than via `dataset_info_from_configs`, which reads
        # metadata files from the module's folder that a package module lacks.
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
                    "objects": tfds.features.Sequence(
                        {
                            "bbox": tfds.features.BBoxFeature(),
                            "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                        }
                    ),
                }
            ),
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
                    "objects": {
                        "bbox": normalized_yxyx(scene["boxes"], IMAGE_SIZE),
                        "label": scene["labels"] - 1,
                    },
                },
            )


register_builtin("shapes_detection", ShapesDetection)
