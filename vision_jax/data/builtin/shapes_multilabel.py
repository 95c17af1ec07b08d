"""`builtin:shapes_multilabel`: which shape classes appear in a scene, a built-in, offline
multi-label dataset.

64x64 RGB scenes of 1-4 flat-coloured circles, squares and triangles over softened textured
backgrounds (the detection scenes of `shapes_scenes`, smaller and with fewer shapes so that
every subset of classes is common), generated from fixed seeds: every build is identical and
needs no download and no TensorFlow. The TFDS builder name is
`vision_jax_shapes_multilabel`.

Features, in the layout of the TFDS catalog's VOC `labels` feature:
  image    (64, 64, 3) uint8
  labels   Sequence(ClassLabel): the sorted, distinct classes visible in the image,
           0 circle, 1 square, 2 triangle (a shape hidden below others is removed from the
           scene before it is drawn, so a listed class is always visible)

Version 2.0.0 makes the shapes the salient thing in the scene, as `shapes_classification`
2.0.0 did (see its docstring): a width-16 ResNet-18 reached only test mAP 0.618 on 1.0.0
(chance, the positive rate, about 0.6), because the checker and stripe textures carry the
same straight edges and corners that tell shapes apart, at full contrast, while a shape was
often a jittered background colour 24 levels away and 5 to 13 pixels in radius, or a sliver
at the frame. Now the texture keeps 30 % of its contrast (`shapes_scenes.soften_background`),
each shape's colour is at least 100 RGB levels from both background colours
(`shapes_scenes.contrasting_color`), shapes are larger (9.0 to 14.1 pixels), and a shape
with fewer than 120 visible pixels or half its in-frame area is removed from the scene.

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
# Equal-area radius as a fraction of the side (9.0 to 14.1 pixels): a corner spans several
# 3x3 receptive fields, and four shapes still fit with little overlap.
SIZE_RANGE = (0.14, 0.22)
# A shape keeps at least this many visible pixels (about half the smallest shape) and this
# fraction of its in-frame area, or it is removed before drawing: a sliver at the frame or
# under another shape may not show what tells its class.
MIN_VISIBLE_PIXELS = 120
MIN_VISIBLE_FRACTION = 0.5
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
        texture_contrast=TEXTURE_CONTRAST, min_shape_contrast=MIN_SHAPE_CONTRAST)
    # Scene class ids are 1..K (0 is background); dataset labels are 0-based.
    labels = np.unique(np.asarray(scene["labels"], np.int64) - 1)
    return {"image": scene["image"], "labels": labels, "scene": scene}


class ShapesMultilabel(tfds.core.GeneratorBasedBuilder):
    """Procedural shape scenes labelled with the set of shape classes they show."""

    # Prefixed so it cannot clash with a TFDS catalog name in a shared data_dir.
    name = "vision_jax_shapes_multilabel"
    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release.",
                     "2.0.0": "Softer textures, contrasting and larger, more visible shapes."}

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
