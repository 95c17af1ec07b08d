"""`builtin:shapes_classification`: one shape per image, its class, and its box as metadata.

Localisation methods (Grad-CAM, saliency) need a classification dataset whose
answer has a known place in the image; this one is generated from the same
procedural scenes as `shapes_detection` (see `shapes_scenes`), with exactly one
flat-coloured circle, square or triangle over a textured background. Seeded per
example, so every build is identical and needs no download and no TensorFlow.
The TFDS builder name is `vision_jax_shapes_classification`.

Features:
  image  (48, 48, 3) uint8
  label  ClassLabel: 0 circle, 1 square, 2 triangle
  bbox   BBoxFeature: float32 [ymin, xmin, ymax, xmax] in [0, 1], tight around the
         shape's pixels, pixel-edge convention (ymax = (last row + 1) / 48); metadata
         only, classification ignores it. The whole shape is always in the frame.

Splits: train 3,000 and test 500 examples.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import tensorflow_datasets as tfds

from vision_jax.data.builtin import shapes_scenes
from vision_jax.data.builtin.shapes_detection import normalized_yxyx
from vision_jax.data.registry import register_builtin

IMAGE_SIZE = 48
CLASS_NAMES = shapes_scenes.DEFAULT_CLASSES
SPLIT_SIZES = {"train": 3_000, "test": 500}
# Large shapes (radius 15-30 % of the side), so that a 48x48 image shows their corners.
SIZE_RANGE = (0.15, 0.3)

# Pixels kept free between the shape's box and the frame.
_MARGIN = 2
_DATASET_SEED = 20_261_202
_SPLIT_SEEDS = {"train": 0, "test": 1}


def generate_example(split: str, index: int) -> dict:
    """Example `index` of `split` as NumPy: image (H, W, 3) uint8, label int, box (4,) yxyx."""
    if split not in SPLIT_SIZES:
        raise ValueError(f"split={split!r} is not one of {tuple(SPLIT_SIZES)}")
    rng = np.random.default_rng([_DATASET_SEED, _SPLIT_SEEDS[split], index])
    while True:  # redraw until the whole shape is in the frame: a cut shape has no class
        scene = shapes_scenes.generate_scene(rng, image_size=IMAGE_SIZE, min_objects=1,
                                             max_objects=1, size_range=SIZE_RANGE)
        x_min, y_min, x_max, y_max = scene["boxes"][0]
        if min(x_min, y_min) >= _MARGIN and max(x_max, y_max) <= IMAGE_SIZE - _MARGIN:
            break
    return {
        "image": scene["image"],
        "label": int(scene["labels"][0]) - 1,
        "bbox": normalized_yxyx(scene["boxes"], IMAGE_SIZE)[0],
    }


class ShapesClassification(tfds.core.GeneratorBasedBuilder):
    """Single-object procedural shapes: class label plus the object's exact box."""

    name = "vision_jax_shapes_classification"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=__doc__,
            features=tfds.features.FeaturesDict({
                "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
                "label": tfds.features.ClassLabel(names=CLASS_NAMES),
                "bbox": tfds.features.BBoxFeature(),
            }),
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict:
        del dl_manager  # everything is generated; nothing is downloaded
        return {split: self._generate_examples(split) for split in SPLIT_SIZES}

    def _generate_examples(self, split: str) -> Iterator[tuple[int, dict]]:
        for index in range(SPLIT_SIZES[split]):
            example = generate_example(split, index)
            yield index, {**example, "image": shapes_scenes.encode_png(example["image"])}


register_builtin("shapes_classification", ShapesClassification)
