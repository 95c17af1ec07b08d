"""The `fcos` detector: target assignment on hand-made boxes (hand-counted positives and
centerness), a perfect head output decoding back to the ground truth, and the loss."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax.models import create, fcos
from vision_jax.models.fcos import fpn_points
from vision_jax.tasks.detection import DetectionSection, DetectionTask

IMAGE = 64  # levels: 8x8 at stride 8, 4x4 at 16, 2x2 at 32 -> 84 locations
POINTS = fpn_points(IMAGE)
RANGES = fcos.point_scale_ranges(POINTS, (8, 16, 32),
                                          fcos.DEFAULT_SCALE_RANGES)


def _assign(boxes, classes, **kwargs):
    out = fcos.assign(jnp.asarray(POINTS), jnp.asarray(RANGES),
                               jnp.asarray(boxes, jnp.float32), jnp.asarray(classes), **kwargs)
    return {k: np.asarray(v) for k, v in out.items()}


def _index(x, y, stride) -> int:
    return int(np.flatnonzero((POINTS[:, 0] == x) & (POINTS[:, 1] == y)
                              & (POINTS[:, 2] == stride))[0])


def _positive_points(target):
    return {(float(x), float(y), int(s)) for (x, y, s) in POINTS[target["positive"]]}


def test_points_layout():
    assert POINTS.shape == (84, 3)
    np.testing.assert_array_equal(POINTS[:3], [[4, 4, 8], [12, 4, 8], [20, 4, 8]])
    np.testing.assert_array_equal(POINTS[64], [8, 8, 16])
    np.testing.assert_array_equal(POINTS[-1], [48, 48, 32])


def test_centre_sampling_and_centerness_by_hand():
    # Box 32x32 centred at (24, 24): largest distance <= 32 -> level 8 only (range 0-64).
    # Centre region: 24 +- 1.5 * 8 = (12, 36), strict -> stride-8 centres 20 and 28 on each axis.
    target = _assign([[8, 8, 40, 40], [0, 0, 0, 0]], [2, -1])
    assert _positive_points(target) == {(20, 20, 8), (28, 20, 8), (20, 28, 8), (28, 28, 8)}
    assert set(target["cls"][target["positive"]]) == {2}
    assert np.all(target["cls"][~target["positive"]] == -1)
    # At (20, 20): l = t = 12, r = b = 20 -> sqrt(12/20 * 12/20) = 0.6.
    index = _index(20, 20, 8)
    assert target["centerness"][index] == pytest.approx(0.6, rel=1e-6)
    np.testing.assert_array_equal(target["box"][index], [8, 8, 40, 40])
    # Without centre sampling (huge radius) every stride-8 centre inside the box is positive.
    wide = _assign([[8, 8, 40, 40]], [2], center_radius=100.0)
    assert len(_positive_points(wide)) == 16  # centres 12, 20, 28, 36 on each axis


def test_scale_ranges_send_big_boxes_to_coarse_levels_and_smallest_box_wins():
    # The whole image: its central locations at every level reach at most 48 px (< 64), so
    # with the default ranges only level 8 learns it.
    big = _assign([[0, 0, 64, 64]], [0], center_radius=1.5)
    strides = {s for (_, _, s) in _positive_points(big)}
    assert strides == {8}  # every distance <= 64 -> only the finest range applies
    custom = fcos.point_scale_ranges(POINTS, (8, 16, 32), ((0, 20), (20, 40), (40, 99)))
    coarse = fcos.assign(jnp.asarray(POINTS), jnp.asarray(custom),
                                  jnp.asarray([[0, 0, 64, 64]], jnp.float32), jnp.asarray([0]))
    reach = np.max(np.asarray(fcos.distances(jnp.asarray(POINTS), jnp.asarray(
        [[0.0, 0, 64, 64]])))[:, 0], axis=-1)
    positive = np.asarray(coarse["positive"])
    low, high = custom[:, 0], custom[:, 1]
    assert np.all((reach[positive] >= low[positive]) & (reach[positive] <= high[positive]))
    # Overlap: a location inside both boxes takes the smaller one.
    both = _assign([[8, 8, 40, 40], [16, 16, 32, 32]], [0, 1])
    index = _index(20, 20, 8)
    assert both["index"][index] == 1 and both["cls"][index] == 1


def _perfect_outputs(boxes, classes, num_classes):
    """Head outputs that predict every assigned location's box exactly and confidently."""
    target = _assign(boxes, classes)
    x, y, box = POINTS[:, 0], POINTS[:, 1], target["box"]
    ltrb = np.stack([x - box[:, 0], y - box[:, 1], box[:, 2] - x, box[:, 3] - y], -1)
    ltrb = np.where(target["positive"][:, None], np.maximum(ltrb, 0.5), 1.0)
    cls = np.full((len(POINTS), num_classes), -12.0, np.float32)
    cls[target["positive"], target["cls"][target["positive"]]] = 12.0
    ctr = np.where(target["positive"], 12.0, -12.0).astype(np.float32)
    return {"cls": cls[None], "box": ltrb[None].astype(np.float32), "ctr": ctr[None]}, target


def test_perfect_head_output_decodes_to_the_ground_truth():
    gt = np.array([[8, 8, 40, 40], [36, 4, 60, 20], [30, 40, 56, 62]], np.float32)
    classes = np.array([1, 0, 2], np.int32)
    outputs, _ = _perfect_outputs(gt, classes, 3)
    task = DetectionTask(3, ["a", "b", "c"], IMAGE, create("fcos", num_classes=3),
                         DetectionSection(max_detections=20, score_threshold=0.5))
    dets = jax.jit(task.decode)(jax.tree.map(jnp.asarray, outputs))
    keep = np.asarray(dets["classes"][0]) >= 0
    assert keep.sum() == 3  # NMS merged every location of an object into one box
    found = sorted(zip(np.asarray(dets["classes"][0])[keep].tolist(),
                       np.asarray(dets["boxes"][0])[keep].tolist(), strict=True))
    expected = sorted(zip(classes.tolist(), gt.tolist(), strict=True))
    for (c1, b1), (c2, b2) in zip(found, expected, strict=True):
        assert c1 == c2
        np.testing.assert_allclose(b1, b2, atol=1e-4)


def test_loss_is_low_for_perfect_outputs_and_higher_for_wrong_ones():
    gt = np.array([[[8, 8, 40, 40], [0, 0, 0, 0]]], np.float32)
    classes = np.array([[1, -1]], np.int32)
    outputs, target = _perfect_outputs(gt[0], classes[0], 2)
    kwargs = {"points": POINTS, "ranges": RANGES}
    good, sums = fcos.fcos_loss(jax.tree.map(jnp.asarray, outputs), jnp.asarray(gt),
                                        jnp.asarray(classes), **kwargs)
    assert float(sums["box_loss"]) == pytest.approx(0.0, abs=1e-5)  # GIoU = 1 everywhere
    assert float(sums["positives"]) == 4
    # The centerness term is the BCE of a 12-logit against targets < 1: its exact value.
    ctr_targets = target["centerness"][target["positive"]]
    bce = -(ctr_targets * np.log(1 / (1 + np.exp(-12.0)))
            + (1 - ctr_targets) * np.log(1 - 1 / (1 + np.exp(-12.0))))
    assert float(sums["ctr_loss"]) == pytest.approx(bce.mean(), rel=1e-4)
    shifted = dict(outputs, box=outputs["box"] * 1.5)
    worse, _ = fcos.fcos_loss(jax.tree.map(jnp.asarray, shifted), jnp.asarray(gt),
                                      jnp.asarray(classes), **kwargs)
    assert float(worse) > float(good) + 0.05
