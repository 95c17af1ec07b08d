"""`builtin:shapes_multilabel`: which shape classes appear in a scene, a built-in, offline
multi-label dataset.

64x64 RGB scenes of 1-4 whole, flat-coloured circles, squares and triangles, apart from each
other, over softened textured backgrounds (the detection scenes of `shapes_scenes`), generated
from fixed seeds: every build is identical and needs no download and no TensorFlow. The TFDS
builder name is `vision_jax_shapes_multilabel`.

Features, in the layout of the TFDS catalog's VOC `labels` feature:
  image    (64, 64, 3) uint8
  labels   Sequence(ClassLabel): the sorted, distinct classes in the image, 0 circle,
           1 square, 2 triangle (every shape is wholly visible)

Version 2.0.0 made the shapes the salient thing in the scene, as `shapes_classification`
2.0.0 did (see its docstring): on 1.0.0 a width-16 ResNet-18 reached only test mAP 0.618
(chance, the positive rate, about 0.6), because the checker and stripe textures carried the
straight edges and corners that tell shapes apart, at full contrast. The texture keeps 30 %
of its contrast (`shapes_scenes.soften_background`) and each shape's colour is at least 100
RGB levels from both background colours (`shapes_scenes.contrasting_color`).

Version 3.0.0 makes every label checkable from the pixels: on 2.0.0 the same network
stopped at test mAP 0.700 after 30 epochs, having learnt little beyond how many shapes a
scene holds, then memorised its 4,000 scenes. Its shapes' centres were drawn anywhere in
the frame and shapes overlapped: 57 % of the labelled shapes were cut by the frame, 18 %
partly hidden by another, and 35 % showed less than three quarters of their area (61 % of
the scenes held such a shape), so a cut circle showed straight edges and corners and a cut
square or triangle could look like either. Now each shape lies wholly in the frame and at
least 2 pixels from the others (`generate_scene(apart=2)`; a shape that finds no room is left
out, so scenes hold 1-4 shapes, mostly 1-3), with an equal-area radius of 8.3 to 12.8 pixels,
and the train split has 20,000 scenes instead of 4,000.

`vision_jax.data.multilabel.multi_hot_record` turns a record into {"image", "labels":
multi-hot}. Splits: train 20,000 and test 1,000 examples (the build takes a few minutes).
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
SPLIT_SIZES = {"train": 20_000, "test": 1_000}
# Equal-area radius as a fraction of the side (8.3 to 12.8 pixels): a corner spans several
# 3x3 receptive fields, and up to four whole shapes fit apart.
SIZE_RANGE = (0.13, 0.20)
# Every shape lies wholly in the frame, this many pixels clear of the others
# (`shapes_scenes.generate_scene(apart=...)`): its whole outline is visible.
APART = 2
# So every shape keeps all its pixels (the smallest covers about 216).
MIN_VISIBLE_PIXELS = 120
MIN_VISIBLE_FRACTION = 1.0
# As in `shapes_classification`: the texture keeps 30 % of its contrast, and shapes are at
# least 100 RGB levels from both background colours.
TEXTURE_CONTRAST = 0.3
MIN_SHAPE_CONTRAST = 100.0

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
    scene = shapes_scenes.generate_scene(
        rng, image_size=IMAGE_SIZE, max_objects=MAX_OBJECTS, size_range=SIZE_RANGE,
        min_visible_pixels=MIN_VISIBLE_PIXELS, min_visible_fraction=MIN_VISIBLE_FRACTION,
        texture_contrast=TEXTURE_CONTRAST, min_shape_contrast=MIN_SHAPE_CONTRAST, apart=APART)
    # Scene class ids are 1..K (0 is background); dataset labels are 0-based.
    labels = np.unique(np.asarray(scene["labels"], np.int64) - 1)
    return {"image": scene["image"], "labels": labels, "scene": scene}


class ShapesMultilabel(tfds.core.GeneratorBasedBuilder):
    """Procedural shape scenes labelled with the set of shape classes they show."""

    # Prefixed so it cannot clash with a TFDS catalog name in a shared data_dir.
    name = "vision_jax_shapes_multilabel"
    VERSION = tfds.core.Version("3.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release.",
                     "2.0.0": "Softer textures, contrasting and larger, more visible shapes.",
                     "3.0.0": "Whole shapes, in the frame and apart; 20,000 train scenes."}

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
