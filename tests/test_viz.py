"""vision_jax.viz: PNGs are valid and sized as asked, overlays and CAMs equal hand values."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import pytest
from PIL import Image

from vision_jax.viz import (
    class_activation_map,
    class_palette,
    draw_detections,
    overlay_heatmap,
    overlay_mask,
    plot_activations,
    plot_confusion_matrix,
    plot_conv_filters,
    plot_training_curves,
    read_curves,
    save_segmentation_grid,
)
from vision_jax.viz.filters import tile_mosaic


def _open_png(path) -> Image.Image:
    with Image.open(path) as image:
        image.verify()  # raises on a corrupt file
    image = Image.open(path)
    assert image.format == "PNG"
    pixels = np.asarray(image.convert("RGB"))
    assert pixels.std() > 0, "the plot is blank"
    return image


# ---------------------------------------------------------------- training curves


def _write_metrics(path, truncated_tail=True):
    lines = []
    for step in range(0, 200, 5):
        record = {"step": step, "train/loss": 2.0 * 0.97**step, "train/learning_rate": 0.1}
        if step % 50 == 0:
            record.update({"eval/loss": 2.1 * 0.97**step, "eval/accuracy": 1 - 0.9 * 0.98**step})
            record["eval/note"] = "strings are skipped"
        lines.append(json.dumps(record))
    text = "\n".join(lines) + "\n"
    if truncated_tail:
        text += '{"step": 200, "train/lo'  # a run still writing its last line
    path.write_text(text)


def test_training_curves_panels_and_png(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    _write_metrics(metrics)
    curves = read_curves(metrics)
    assert set(curves) == {"loss", "learning_rate", "accuracy"}
    assert set(curves["loss"]) == {"train", "eval"}
    assert len(curves["loss"]["train"]) == 40 and len(curves["loss"]["eval"]) == 4
    assert curves["accuracy"]["eval"][1] == (50, pytest.approx(1 - 0.9 * 0.98**50))

    out = plot_training_curves(metrics, tmp_path / "plots" / "curves.png")
    # Three panels in one row of 5 x 3.5 inches at 100 dpi.
    assert _open_png(out).size == (1500, 350)


def test_training_curves_reject_broken_middle_line(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": 1, "train/loss": 1.0}\nnot json\n{"step": 2, "train/loss": 0.5}\n')
    with pytest.raises(ValueError, match=":2 is not valid JSON"):
        read_curves(metrics)
    with pytest.raises(FileNotFoundError, match="metrics_jsonl_path"):
        read_curves(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------- confusion matrix


@pytest.mark.parametrize("num_classes,min_width", [(4, 500), (100, 2000)])
def test_confusion_matrix_png(tmp_path, num_classes, min_width):
    rng = np.random.default_rng(num_classes)
    conf = rng.integers(0, 20, (num_classes, num_classes)) + 50 * np.eye(num_classes, dtype=int)
    conf[-1] = 0  # a class with no examples must not produce NaNs or warnings
    names = [f"class_{i}" for i in range(num_classes)]
    with np.errstate(all="raise"):
        out = plot_confusion_matrix(conf, names, tmp_path / "conf.png")
    width, height = _open_png(out).size
    assert width >= min_width and height >= min_width * 0.8
    with pytest.raises(ValueError, match="class_names"):
        plot_confusion_matrix(conf, names[:-1], tmp_path / "bad.png")


# ---------------------------------------------------------------- segmentation


def test_overlay_mask_blends_only_labelled_pixels():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (6, 7, 3)).astype(np.uint8)
    mask = rng.integers(0, 3, (6, 7))
    mask[0, :] = 255  # ignore label
    palette = class_palette(3)

    out = overlay_mask(image, mask, num_classes=3, alpha=0.25)
    assert out.dtype == np.uint8 and out.shape == (6, 7, 3)
    np.testing.assert_array_equal(out[0], image[0])
    r, c = 3, 4
    want = np.round(0.75 * image[r, c].astype(float) + 0.25 * palette[mask[r, c]])
    np.testing.assert_array_equal(out[r, c], want)
    np.testing.assert_array_equal(overlay_mask(image, mask, 3, alpha=0.0), image)
    # Float grey images are accepted too.
    grey = overlay_mask(image[..., 0] / 255.0, mask, 3, alpha=0.0)
    np.testing.assert_array_equal(grey[..., 1], image[..., 0])


def test_segmentation_grid_png(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.random((2, 16, 16, 3))
    true_masks = rng.integers(0, 4, (2, 16, 16))
    pred_masks = rng.integers(0, 4, (2, 16, 16))
    out = save_segmentation_grid(images, true_masks, pred_masks, tmp_path / "seg.png")
    assert _open_png(out).size == (900, 600)
    with pytest.raises(ValueError, match="share"):
        save_segmentation_grid(images, true_masks[:1], pred_masks, tmp_path / "bad.png")


# ---------------------------------------------------------------- detection


def test_draw_detections_draws_boxes_and_skips_padding():
    image = np.zeros((80, 100, 3), np.uint8)
    boxes = np.array([[20, 30, 60, 70], [70, 5, 95, 20], [5, 60, 15, 75]], np.float64)
    classes = np.array([1, -1, 0])  # the second entry is padding
    scores = np.array([0.9, 0.8, 0.05])  # the third is below the threshold
    out = draw_detections(image, boxes, classes, scores, ["cat", "dog"], score_threshold=0.1)
    assert isinstance(out, Image.Image) and out.size == (100, 80)
    pixels = np.asarray(out)
    dog = tuple(class_palette(2)[1])
    assert tuple(pixels[50, 20]) == dog  # left edge of the drawn box
    assert tuple(pixels[69, 40]) == dog  # bottom edge
    assert (pixels[40:60, 30:50] == 0).all()  # inside the box stays untouched
    assert (pixels[8:18, 75:92] == 0).all()  # padding entry not drawn
    assert (pixels[62:74, 6:14] == 0).all()  # low-score entry not drawn
    # The label sits above the box: something other than black is written there.
    assert pixels[18:29, 20:60].any()
    np.testing.assert_array_equal(image, 0)  # the input is not modified


# ---------------------------------------------------------------- filters and activations


def test_tile_mosaic_layout():
    tiles = np.arange(5)[:, None, None] * np.ones((5, 2, 2)) / 4
    mosaic = tile_mosaic(tiles, gap=1)
    # 5 tiles -> 3 columns x 2 rows of 2x2 with 1-pixel gaps.
    assert mosaic.shape == (5, 8)
    assert np.isnan(mosaic[0, 2]) and np.isnan(mosaic[2, 0])  # gaps
    assert np.isnan(mosaic[3:5, 6:8]).all()  # the empty sixth slot
    np.testing.assert_array_equal(mosaic[3:5, 3:5], tiles[4])


@pytest.mark.parametrize("shape", [(3, 3, 3, 16), (5, 5, 8, 10)])
def test_conv_filters_png(tmp_path, shape):
    kernel = np.random.default_rng(0).normal(size=shape)
    out = plot_conv_filters(kernel, tmp_path / "filters.png")
    width, height = _open_png(out).size
    assert width >= 300 and height >= 300
    with pytest.raises(ValueError, match="HWIO"):
        plot_conv_filters(kernel[0], tmp_path / "bad.png")


def test_activations_png(tmp_path):
    feature_map = np.random.default_rng(0).random((8, 8, 20))
    out = plot_activations(feature_map, tmp_path / "act.png", max_channels=12)
    width, height = _open_png(out).size
    assert width >= 300 and height >= 300


# ---------------------------------------------------------------- class activation maps


def test_cam_is_the_normalised_weighted_sum():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(4, 5, 3))
    kernel = rng.normal(size=(3, 2))
    cam = class_activation_map(features, kernel, class_index=1)
    raw = np.zeros((4, 5))
    for h in range(4):
        for w in range(5):
            raw[h, w] = sum(features[h, w, c] * kernel[c, 1] for c in range(3))
    want = (raw - raw.min()) / (raw.max() - raw.min())
    np.testing.assert_allclose(cam, want, atol=1e-12)
    assert cam.min() == 0.0 and cam.max() == 1.0
    np.testing.assert_array_equal(class_activation_map(np.ones((2, 2, 3)), kernel, 0), 0)
    with pytest.raises(ValueError, match="dense_kernel"):
        class_activation_map(features, kernel.T, 0)
    with pytest.raises(ValueError, match="class_index"):
        class_activation_map(features, kernel, 2)


def test_overlay_heatmap():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (8, 10, 3)).astype(np.uint8)
    cam = rng.random((8, 10))
    np.testing.assert_array_equal(overlay_heatmap(image, cam, alpha=0.0), image)
    jet = np.round(matplotlib.colormaps["jet"](cam)[..., :3] * 255)
    np.testing.assert_array_equal(overlay_heatmap(image, cam, alpha=1.0), jet)
    # A coarse CAM (as from a 7x7 feature map) is resized to the image.
    resized = overlay_heatmap(image, cam[:4, :5], alpha=0.5)
    assert resized.shape == (8, 10, 3) and resized.dtype == np.uint8
