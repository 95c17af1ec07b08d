"""Detection data: the on-device flip / shift / scale / rotation checked against where the
drawn pixels went, dropping boxes that leave, host resize and batch padding, and the
COCO-format JSON source."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from vision_jax.augment import geometric
from vision_jax.data import detection as det
from vision_jax.data import transforms
from vision_jax.data.sources import open_source


def _scene(rects, size=(48, 64)) -> dict:
    """A black float image with white filled rectangles (xyxy, integer pixel edges)."""
    image = np.zeros((*size, 3), np.float32)
    for x0, y0, x1, y1 in rects:
        image[y0:y1, x0:x1] = 1.0
    return {"image": image, "boxes": np.asarray(rects, np.float32).reshape(-1, 4),
            "classes": np.arange(len(rects), dtype=np.int32)}


def _pixel_box(image, threshold=0.5):
    ys, xs = np.nonzero(image[..., 0] > threshold)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def _warp(example, matrix, min_visible):
    """The on-device geometric transform of an example; dropped boxes leave the lists."""
    height, width = example["image"].shape[:2]
    image = np.asarray(geometric.warp_image(jnp.asarray(example["image"]), matrix))
    boxes, classes = geometric.warp_boxes(jnp.asarray(example["boxes"]),
                                          jnp.asarray(example["classes"]), matrix, height,
                                          width, min_visible)
    keep = np.asarray(classes) >= 0
    return {"image": image, "boxes": np.asarray(boxes)[keep], "classes": np.asarray(classes)[keep]}


def test_flip_moves_boxes_with_the_pixels():
    out = _warp(_scene([(5, 10, 20, 30)]), geometric.flip_matrix(True, 64, axis=1), 0.25)
    np.testing.assert_allclose(out["boxes"][0], _pixel_box(out["image"]), atol=1e-4)
    np.testing.assert_allclose(out["boxes"][0], [44, 10, 59, 30], atol=1e-4)


def test_shift_moves_boxes_and_drops_the_ones_that_leave():
    example = _scene([(5, 10, 20, 30), (50, 2, 60, 12)])
    out = _warp(example, geometric.translation(4, -3), min_visible=0.25)
    assert out["classes"].tolist() == [0, 1]
    np.testing.assert_allclose(out["boxes"][0], [2, 14, 17, 34], atol=1e-4)
    np.testing.assert_allclose(out["boxes"][1], [47, 6, 57, 16], atol=1e-4)
    # Shifted right by 10: box 1 keeps 4 of its 10 columns (40%), kept and clipped at 0.25,
    # dropped at 0.5; box 0 stays whole.
    kept = _warp(example, geometric.translation(0, 10), min_visible=0.25)
    assert kept["classes"].tolist() == [0, 1]
    np.testing.assert_allclose(kept["boxes"][1], [60, 2, 64, 12], atol=1e-4)
    dropped = _warp(example, geometric.translation(0, 10), min_visible=0.5)
    assert dropped["classes"].tolist() == [0]
    gone = _warp(example, geometric.translation(0, -25), min_visible=0.0)
    assert gone["classes"].tolist() == [1]  # box 0 left the image entirely


@pytest.mark.parametrize("scale, offset", [(2.0, (-20, -30)), (0.5, (5, 9)), (1.5, (0, -10))])
def test_scale_keeps_boxes_on_the_object(scale, offset):
    out = _warp(_scene([(20, 14, 40, 34)]), geometric.zoom(scale, scale, *offset), 0.25)
    assert out["classes"].tolist() == [0]
    # Bilinear edges blur by about a pixel; the box must match the drawn object that closely.
    np.testing.assert_allclose(out["boxes"][0], _pixel_box(out["image"]), atol=1.0)


def test_rotation_keeps_boxes_on_the_object():
    out = _warp(_scene([(20, 14, 40, 34)]), geometric.rotation(20.0, 48, 64), 0.25)
    assert out["classes"].tolist() == [0]
    np.testing.assert_allclose(out["boxes"][0], _pixel_box(out["image"]), atol=1.0)


def test_scale_crop_drops_boxes_outside_the_crop():
    example = _scene([(2, 2, 10, 10), (30, 20, 40, 30)])
    out = _warp(example, geometric.zoom(2.0, 2.0, -40, -60), 0.25)  # keeps the centre
    assert out["classes"].tolist() == [1]


def test_prepare_resizes_scales_boxes_and_stack_pads_with_minus_one():
    scene = _scene([(8, 6, 24, 30)])
    out = transforms.prepare({**scene, "image": (scene["image"] * 255).astype(np.uint8)}, 32,
                             max_boxes=3)
    assert out["image"].shape == (32, 32, 3) and out["image"].dtype == np.uint8
    np.testing.assert_allclose(out["boxes"][0], [4, 4, 12, 20])
    assert out["classes"].tolist() == [0, -1, -1]
    many = transforms.prepare(_scene([(1, 1, 5, 5), (6, 6, 9, 9), (10, 10, 20, 20)]), 48,
                              max_boxes=2)
    none = transforms.prepare(_scene([]), 48, max_boxes=2)
    batch = transforms.stack([many, none])
    assert batch["boxes"].shape == (2, 2, 4) and batch["classes"].tolist() == [[0, 1], [-1, -1]]
    np.testing.assert_array_equal(batch["boxes"][1], 0)
    assert batch["boxes"].dtype == np.float32 and batch["image"].dtype == np.uint8


def test_select_objects_reads_normalised_yxyx():
    record = {"image": np.zeros((50, 100, 3), np.uint8),
              "objects": {"bbox": [np.array([0.1, 0.2, 0.5, 0.6], np.float32)], "label": [2]}}
    example = det.select_objects(record)
    np.testing.assert_allclose(example["boxes"], [[20, 5, 60, 25]], rtol=1e-6)
    assert example["classes"].tolist() == [2]


def test_select_objects_drops_coco_crowd_regions():
    boxes = [np.array([0.1, 0.2, 0.5, 0.6], np.float32), np.array([0.0, 0.0, 1.0, 1.0], np.float32)]
    record = {"image": np.zeros((50, 100, 3), np.uint8),
              "objects": {"bbox": boxes, "label": [2, 0], "is_crowd": [False, True]}}
    example = det.select_objects(record)
    np.testing.assert_allclose(example["boxes"], [[20, 5, 60, 25]], rtol=1e-6)
    assert example["classes"].tolist() == [2]


def test_catalog_code_that_needs_tensorflow_is_a_one_line_error(tmp_path):
    # TFDS's coco builder uses tf.int64 just to describe its features.
    try:
        import tensorflow  # noqa: F401
        pytest.skip("TensorFlow is installed: the catalog code runs")
    except ImportError:
        pass
    with pytest.raises(ValueError, match=r"tfds:coco/2017.*needs 'tensorflow'.*"
                                         r"tfds:coco/2017:<version>") as error:
        open_source("tfds:coco/2017", "train", data_dir=str(tmp_path))
    assert "\n" not in str(error.value)


# -- COCO-format JSON ----------------------------------------------------------------------------


def _write_coco(root, annotations, images=None, write_images=True):
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "val").mkdir(exist_ok=True)
    images = images or [{"id": 7, "file_name": "a.png", "width": 40, "height": 30}]
    if write_images:
        for im in images:
            Image.fromarray(np.zeros((im["height"], im["width"], 3), np.uint8)).save(
                root / "val" / im["file_name"])
    data = {"images": images, "annotations": annotations,
            "categories": [{"id": 5, "name": "cat"}, {"id": 2, "name": "dog"}]}
    (root / "annotations" / "instances_val.json").write_text(json.dumps(data))


def test_coco_source_reads_boxes_and_categories(tmp_path):
    _write_coco(tmp_path, [{"id": 1, "image_id": 7, "category_id": 5, "bbox": [4, 3, 10, 12]},
                           {"id": 2, "image_id": 7, "category_id": 2, "bbox": [0, 0, 40, 30]},
                           {"id": 3, "image_id": 7, "category_id": 2, "bbox": [1, 1, 5, 5],
                            "iscrowd": 1}])
    source, info = open_source(f"coco:{tmp_path}", "val")
    assert len(source) == 1 and info.class_names == ("dog", "cat")  # sorted by category id
    example = det.select_objects(source[0])
    np.testing.assert_allclose(example["boxes"], [[4, 3, 14, 15], [0, 0, 40, 30]], atol=1e-5)
    assert example["classes"].tolist() == [1, 0]
    assert det.detection_class_names(f"coco:{tmp_path}") == ("dog", "cat")


@pytest.mark.parametrize("annotation, message", [
    ({"id": 9, "image_id": 7, "category_id": 5, "bbox": [4, 3, 0, 12]}, "has no area"),
    ({"id": 9, "image_id": 7, "category_id": 5, "bbox": [30, 3, 20, 12]}, "lies outside"),
    ({"id": 9, "image_id": 7, "category_id": 99, "bbox": [4, 3, 5, 5]}, "category_id 99"),
    ({"id": 9, "image_id": 8, "category_id": 5, "bbox": [4, 3, 5, 5]}, "image_id 8"),
    ({"id": 9, "image_id": 7, "category_id": 5, "bbox": [4, 3]}, "must be [x, y, width"),
])
def test_coco_bad_boxes_are_one_line_errors(tmp_path, annotation, message):
    _write_coco(tmp_path, [annotation])
    with pytest.raises(ValueError, match="annotation 9") as error:
        open_source(f"coco:{tmp_path}", "val")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_coco_missing_files_and_splits(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        open_source(f"coco:{tmp_path / 'nowhere'}", "val")
    _write_coco(tmp_path, [], write_images=False)
    with pytest.raises(FileNotFoundError, match=r"image .*a\.png .* is missing"):
        open_source(f"coco:{tmp_path}", "val")
    with pytest.raises(ValueError, match="config.split='train' is not a split.*available: val"):
        open_splits_field(tmp_path)


def open_splits_field(root):
    from vision_jax.data.sources import open_splits

    return open_splits(f"coco:{root}", {"config.split": "train"})
