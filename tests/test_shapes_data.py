"""Procedural shapes: exact labels, determinism, difficulty and the TFDS builders.

References are independent of the generator: matplotlib's point-in-path test
rasterises the polygons, SciPy's min/max filters find the trimap's border band,
scikit-learn fits the per-pixel linear baseline and computes the confusion matrix.
"""

from __future__ import annotations

import math
import time

import chex
import grain
import matplotlib.path
import numpy as np
import pytest
import scipy.ndimage
import tensorflow_datasets as tfds
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix

from vision_jax.data.builtin import shapes_detection, shapes_scenes, shapes_segmentation
from vision_jax.data.registry import BUILTINS

SEEDS = range(12)


def _scene(seed: int, **kwargs) -> dict:
    return shapes_scenes.generate_scene(np.random.default_rng(seed), **kwargs)


def _reference_full_mask(shape: shapes_scenes.Shape, size: int) -> np.ndarray:
    """The shape's pixels (centre inside), rasterised by matplotlib or the circle equation."""
    rows, cols = np.mgrid[0:size, 0:size]
    centres = np.stack([cols.ravel() + 0.5, rows.ravel() + 0.5], axis=-1)
    if shape.kind == "circle":
        distance = np.hypot(centres[:, 0] - shape.center_x, centres[:, 1] - shape.center_y)
        inside = distance <= shape.size
    else:
        inside = matplotlib.path.Path(shape.vertices()).contains_points(centres)
    return inside.reshape(size, size)


# --- the scene generator -----------------------------------------------------------------


def test_same_seed_gives_the_same_scene_and_another_seed_does_not():
    first, second, other = _scene(7), _scene(7), _scene(8)
    for key in ("image", "class_mask", "trimap", "instance_mask", "boxes", "labels"):
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)
    assert first["shapes"] == second["shapes"]
    assert not np.array_equal(first["image"], other["image"])


@pytest.mark.parametrize("size, max_objects", [(64, 4), (96, 6)])
def test_output_shapes_and_dtypes(size, max_objects):
    for seed in SEEDS:
        scene = _scene(seed, image_size=size, max_objects=max_objects)
        count = len(scene["shapes"])
        assert 1 <= count <= max_objects
        chex.assert_shape(scene["image"], (size, size, 3))
        chex.assert_shape([scene["class_mask"], scene["trimap"]], (size, size))
        chex.assert_shape(scene["boxes"], (count, 4))
        chex.assert_shape(scene["labels"], (count,))
        assert scene["image"].dtype == np.uint8
        assert scene["class_mask"].dtype == scene["trimap"].dtype == np.uint8
        assert scene["boxes"].dtype == np.float32 and scene["labels"].dtype == np.int64


@pytest.mark.parametrize("classes", [shapes_scenes.DEFAULT_CLASSES, shapes_scenes.SHAPE_KINDS])
def test_instance_map_matches_an_independent_rasterisation(classes):
    for seed in SEEDS:
        scene = _scene(seed, image_size=64, max_objects=5, classes=classes)
        expected = np.zeros((64, 64), dtype=np.int32)
        for index, shape in enumerate(scene["shapes"]):  # later shapes cover earlier ones
            expected[_reference_full_mask(shape, 64)] = index + 1
        np.testing.assert_array_equal(scene["instance_mask"], expected)


def test_every_visible_object_pixel_has_exactly_its_shape_colour_and_class():
    for seed in SEEDS:
        scene = _scene(seed)
        instances = scene["instance_mask"]
        for index, shape in enumerate(scene["shapes"]):
            visible = instances == index + 1
            assert visible.any()
            np.testing.assert_array_equal(
                scene["image"][visible], np.broadcast_to(shape.color, (visible.sum(), 3))
            )
            assert np.all(scene["class_mask"][visible] == shape.label)
            assert scene["labels"][index] == shape.label
            assert shapes_scenes.DEFAULT_CLASSES[shape.label - 1] == shape.kind
        assert np.all(scene["class_mask"][instances == 0] == 0)


def test_every_kind_covers_the_same_area():
    # Unclipped shapes of equal `size` cover pi * size**2 pixels up to rasterisation error.
    size = 12.0
    for kind in shapes_scenes.SHAPE_KINDS:
        shape = shapes_scenes.Shape(kind, 1, 32.0, 32.0, size, 0.3, (0, 0, 0))
        area = shape.pixel_mask(64, 64).sum()
        assert abs(area - math.pi * size**2) < 0.05 * math.pi * size**2, kind
    triangle = shapes_scenes.Shape("triangle", 1, 0.0, 0.0, size, 0.0, (0, 0, 0))
    side = np.linalg.norm(triangle.vertices()[1] - triangle.vertices()[0])
    assert math.isclose(math.sqrt(3) / 4 * side**2, math.pi * size**2, rel_tol=1e-9)


def test_boxes_are_tight_around_each_objects_visible_pixels():
    for seed in SEEDS:
        scene = _scene(seed, image_size=96, max_objects=6)
        for index, (x_min, y_min, x_max, y_max) in enumerate(scene["boxes"].astype(int)):
            visible = scene["instance_mask"] == index + 1
            inside_box = np.zeros_like(visible)
            inside_box[y_min:y_max, x_min:x_max] = True
            assert not np.any(visible & ~inside_box), "a visible pixel lies outside its box"
            # Tight: each of the four edge rows/columns of the box holds a visible pixel.
            assert visible[y_min, x_min:x_max].any() and visible[y_max - 1, x_min:x_max].any()
            assert visible[y_min:y_max, x_min].any() and visible[y_min:y_max, x_max - 1].any()


@pytest.mark.parametrize("min_pixels, min_fraction", [(16, 0.25), (40, 0.6), (1, 1.0)])
def test_objects_below_the_visibility_threshold_are_dropped(min_pixels, min_fraction):
    for seed in SEEDS:
        scene = _scene(
            seed, max_objects=6, min_visible_pixels=min_pixels, min_visible_fraction=min_fraction
        )
        for index, shape in enumerate(scene["shapes"]):
            visible = np.sum(scene["instance_mask"] == index + 1)
            in_frame = _reference_full_mask(shape, 64).sum()
            assert visible >= min_pixels and visible >= min_fraction * in_frame


def test_trimap_is_the_pet_convention_with_a_border_band_at_visible_boundaries():
    for seed in SEEDS:
        scene = _scene(seed)
        instances = scene["instance_mask"]
        # A pixel is on a boundary when its 3x3 neighbourhood holds two instance ids.
        border = scipy.ndimage.maximum_filter(
            instances, size=3, mode="nearest"
        ) != scipy.ndimage.minimum_filter(instances, size=3, mode="nearest")
        expected = np.where(border, 3, np.where(instances > 0, 1, 2))
        np.testing.assert_array_equal(scene["trimap"], expected)
        assert set(np.unique(scene["trimap"])) <= {1, 2, 3}


def test_class_balance_is_roughly_uniform():
    scenes = [_scene(seed) for seed in range(300)]
    labels = np.concatenate([scene["labels"] for scene in scenes])
    object_share = np.bincount(labels, minlength=4)[1:] / labels.size
    assert np.all((object_share > 0.25) & (object_share < 0.42)), object_share
    pixels = np.bincount(np.concatenate([s["class_mask"].ravel() for s in scenes]), minlength=4)
    pixel_share = pixels[1:] / pixels[1:].sum()
    assert np.all((pixel_share > 0.25) & (pixel_share < 0.42)), pixel_share
    assert 0.6 < pixels[0] / pixels.sum() < 0.95
    assert 2.2 < labels.size / len(scenes) < 2.75  # 1-4 drawn (mean 2.5), ~1% dropped


def test_a_per_pixel_linear_model_cannot_segment_the_shapes():
    # Shape colours overlap the background's, so colour alone carries almost no signal:
    # a logistic regression on RGB ends up predicting background nearly everywhere,
    # whose mIoU is about background share / 4 ~= 0.2 (measured 0.21).
    def pixels(seeds):
        scenes = [shapes_segmentation.generate_example("train", seed) for seed in seeds]
        rgb = np.concatenate([s["image"].reshape(-1, 3) for s in scenes]) / 255.0
        return rgb, np.concatenate([s["class_mask"].ravel() for s in scenes])

    train_rgb, train_classes = pixels(range(0, 20))
    test_rgb, test_classes = pixels(range(100, 110))
    model = LogisticRegression(max_iter=300).fit(train_rgb, train_classes)
    matrix = confusion_matrix(test_classes, model.predict(test_rgb), labels=range(4))
    true_positive = np.diag(matrix)
    iou = true_positive / (matrix.sum(0) + matrix.sum(1) - true_positive)
    assert np.mean(iou) < 0.35, iou
    assert np.mean(iou[1:]) < 0.15, iou  # the shape classes themselves
    # Nor does it find the objects at all, whatever their class (measured 0.0).
    hits = matrix[1:, 1:].sum()
    foreground_iou = hits / (matrix[1:, :].sum() + matrix[:, 1:].sum() - hits)
    assert foreground_iou < 0.2, foreground_iou


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"image_size": 8}, "image_size"),
        ({"max_objects": 0}, "max_objects"),
        ({"min_objects": 3, "max_objects": 2}, "min_objects"),
        ({"classes": ("circle", "hexagon")}, "classes"),
        ({"classes": ("circle", "circle")}, "classes"),
        ({"size_range": (0.3, 0.1)}, "size_range"),
        ({"min_visible_pixels": 0}, "min_visible_pixels"),
        ({"min_visible_fraction": 1.5}, "min_visible_fraction"),
        ({"border_width": 0}, "border_width"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        _scene(0, **kwargs)


def test_normalized_yxyx_matches_hand_computed_values():
    boxes = np.array([[2, 3, 10, 20], [0, 0, 96, 96]], dtype=np.float32)
    expected = np.array([[3, 2, 20, 10], [0, 0, 96, 96]], dtype=np.float32) / 96
    np.testing.assert_allclose(shapes_detection.normalized_yxyx(boxes, 96), expected)


# --- the TFDS builders -------------------------------------------------------------------

_CAPPED_EXAMPLES = 40


def test_builders_are_registered_as_builtin_datasets():
    assert BUILTINS.get("shapes_segmentation") is shapes_segmentation.ShapesSegmentation
    assert BUILTINS.get("shapes_detection") is shapes_detection.ShapesDetection


def _build_capped(builder_class, data_dir) -> tfds.core.DatasetBuilder:
    builder = builder_class(data_dir=str(data_dir), file_format="array_record")
    config = tfds.download.DownloadConfig(max_examples_per_split=_CAPPED_EXAMPLES)
    builder.download_and_prepare(download_config=config)
    return builder


def _scenes_by_image(module, split: str) -> dict[bytes, dict]:
    # Records are stored shuffled, so match each one to its scene through its pixels.
    scenes = (module.generate_example(split, index) for index in range(_CAPPED_EXAMPLES))
    return {scene["image"].tobytes(): scene for scene in scenes}


def test_segmentation_builder_round_trips_through_a_data_source(tmp_path):
    builder = _build_capped(shapes_segmentation.ShapesSegmentation, tmp_path)
    assert builder.name == "vision_jax_shapes_segmentation"
    sources = builder.as_data_source()
    for split in ("train", "test"):
        source = sources[split]
        assert len(source) == _CAPPED_EXAMPLES
        expected = _scenes_by_image(shapes_segmentation, split)
        for index in range(len(source)):
            example = source[index]
            chex.assert_shape(example["image"], (64, 64, 3))
            chex.assert_shape([example["segmentation_mask"], example["trimap"]], (64, 64, 1))
            assert example["image"].dtype == example["segmentation_mask"].dtype == np.uint8
            scene = expected[example["image"].tobytes()]
            np.testing.assert_array_equal(example["segmentation_mask"][..., 0], scene["class_mask"])
            np.testing.assert_array_equal(example["trimap"][..., 0], scene["trimap"])

    # The builder is registered by name, and its source feeds Grain.
    by_name = tfds.data_source(
        "vision_jax_shapes_segmentation", data_dir=str(tmp_path), split="test"
    )
    batch = grain.MapDataset.source(by_name).batch(8)[0]
    chex.assert_shape(batch["image"], (8, 64, 64, 3))


def test_detection_builder_round_trips_through_a_data_source(tmp_path):
    builder = _build_capped(shapes_detection.ShapesDetection, tmp_path)
    assert builder.name == "vision_jax_shapes_detection"
    assert builder.info.features["objects"]["label"].names == ["circle", "square", "triangle"]
    sources = builder.as_data_source()
    for split in ("train", "test"):
        source = sources[split]
        assert len(source) == _CAPPED_EXAMPLES
        expected = _scenes_by_image(shapes_detection, split)
        for index in range(len(source)):
            example = source[index]
            chex.assert_shape(example["image"], (96, 96, 3))
            scene = expected[example["image"].tobytes()]
            boxes = np.asarray(example["objects"]["bbox"], np.float32).reshape(-1, 4)
            labels = np.asarray(example["objects"]["label"], np.int64)
            assert 1 <= len(labels) <= 6
            # [ymin, xmin, ymax, xmax] / 96 of the tight xyxy pixel boxes, 0-based labels.
            x_min, y_min, x_max, y_max = scene["boxes"].T
            np.testing.assert_allclose(
                boxes, np.stack([y_min, x_min, y_max, x_max], -1) / 96, atol=1e-6
            )
            np.testing.assert_array_equal(labels, scene["labels"] - 1)


@pytest.mark.slow
@pytest.mark.parametrize(
    "builder_class", [shapes_segmentation.ShapesSegmentation, shapes_detection.ShapesDetection]
)
def test_full_build_has_the_documented_splits_and_stays_fast(builder_class, tmp_path):
    start = time.process_time()
    builder = builder_class(data_dir=str(tmp_path), file_format="array_record")
    builder.download_and_prepare()
    cpu_seconds = time.process_time() - start
    sources = builder.as_data_source()
    assert {split: len(source) for split, source in sources.items()} == {
        "train": 2_000,
        "test": 500,
    }
    assert cpu_seconds < 30, f"build took {cpu_seconds:.1f} s of CPU (measured 5-10 s)"
