"""YOLO v1: the loss against a loop-by-loop NumPy transcription of the paper, a hand-computed
case, and decode -> NMS recovering ground truth encoded into a perfect grid."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax.models import create
from vision_jax.models.yolo_v1 import cell_collisions, v1_loss
from vision_jax.tasks.detection import DetectionSection, DetectionTask

IMAGE = 64


def _iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def reference_loss(grid, boxes, classes, b, l_coord=5.0, l_noobj=0.5) -> float:
    """Equation 3 of the YOLO paper with explicit loops, one image at a time (batch mean)."""
    n, s, _, depth = grid.shape
    c = depth - 5 * b
    total = 0.0
    for k in range(n):
        owner = {}
        for g in range(boxes.shape[1]):
            if classes[k, g] < 0:
                continue
            x0, y0, x1, y1 = boxes[k, g] / IMAGE
            cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
            cell = (min(int(cy * s), s - 1), min(int(cx * s), s - 1))
            owner.setdefault(cell, (cx, cy, x1 - x0, y1 - y0, classes[k, g]))  # first wins
        for i in range(s):
            for j in range(s):
                out = grid[k, i, j]
                if (i, j) not in owner:
                    total += l_noobj * sum(out[5 * p + 4] ** 2 for p in range(b))
                    continue
                cx, cy, w, h, cls = owner[(i, j)]
                gt = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                ious = []
                for p in range(b):
                    px, py, sw, sh = out[5 * p:5 * p + 4]
                    pcx, pcy, pw, ph = (j + px) / s, (i + py) / s, sw * sw, sh * sh
                    ious.append(_iou((pcx - pw / 2, pcy - ph / 2, pcx + pw / 2, pcy + ph / 2),
                                     gt))
                r = int(np.argmax(ious))
                for p in range(b):
                    conf = out[5 * p + 4]
                    if p != r:
                        total += l_noobj * conf ** 2
                        continue
                    px, py, sw, sh = out[5 * p:5 * p + 4]
                    total += l_coord * ((px - (cx * s - j)) ** 2 + (py - (cy * s - i)) ** 2)
                    total += l_coord * ((sw - np.sqrt(w)) ** 2 + (sh - np.sqrt(h)) ** 2)
                    total += (conf - ious[p]) ** 2
                onehot = np.eye(c)[cls]
                total += float(np.sum((out[5 * b:] - onehot) ** 2))
    return total / n


def test_loss_matches_numpy_transcription_of_the_paper():
    rng = np.random.default_rng(0)
    s, b, c = 3, 2, 4
    grid = rng.uniform(0.05, 0.9, size=(2, s, s, 5 * b + c)).astype(np.float32)
    boxes = np.array([[[2, 3, 30, 40], [40, 10, 60, 30], [5, 6, 20, 25], [0, 0, 0, 0]],
                      [[10, 44, 62, 63], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]], np.float32)
    # Image 0: boxes 0 and 2 share a cell (the first wins); the last entries are padding.
    classes = np.array([[1, 3, 0, -1], [2, -1, -1, -1]], np.int32)
    loss, sums = v1_loss(jnp.asarray(grid), jnp.asarray(boxes), jnp.asarray(classes),
                         image_size=IMAGE, boxes_per_cell=b)
    expected = reference_loss(grid.astype(np.float64), boxes, classes, b)
    np.testing.assert_allclose(float(loss), expected, rtol=1e-5)
    parts = sum(float(sums[k]) for k in ("coord_loss", "obj_loss", "noobj_loss", "class_loss"))
    np.testing.assert_allclose(parts / 2, expected, rtol=1e-5)


def test_hand_computed_responsible_box_weights_and_noobj():
    # One 2x2 grid, B=2, C=1, a ground-truth box of 32x32 px centred at (16, 16): cell (0, 0),
    # centre at the cell's middle (0.5, 0.5), sqrt(w) = sqrt(h) = sqrt(0.5).
    s, b = 2, 2
    grid = np.zeros((1, s, s, 5 * b + 1), np.float32)
    sq = np.sqrt(0.5)
    # Predictor 0 sits exactly on the box (IoU 1), predictor 1 is off (IoU 0): 0 responsible.
    grid[0, 0, 0, 0:5] = [0.5, 0.5, sq, sq, 0.8]
    grid[0, 0, 0, 5:10] = [0.0, 0.0, 0.1, 0.1, 0.4]
    grid[0, 0, 0, 10] = 0.7  # class probability
    grid[0, 1, 1, 4] = 0.6  # a confident predictor in an empty cell
    grid[0, 1, 1, 9] = -0.2
    boxes = np.array([[[0, 0, 32, 32]]], np.float32)
    classes = np.array([[0]], np.int32)
    loss, sums = v1_loss(jnp.asarray(grid), jnp.asarray(boxes), jnp.asarray(classes),
                         image_size=IMAGE, boxes_per_cell=b)
    obj = (0.8 - 1.0) ** 2  # target = IoU = 1
    noobj = 0.5 * (0.4 ** 2 + 0.6 ** 2 + 0.2 ** 2)  # the non-responsible and the empty cell
    cls = (0.7 - 1.0) ** 2
    assert float(sums["coord_loss"]) == pytest.approx(0.0, abs=1e-6)
    assert float(sums["obj_loss"]) == pytest.approx(obj, rel=1e-5)
    assert float(sums["noobj_loss"]) == pytest.approx(noobj, rel=1e-5)
    assert float(sums["class_loss"]) == pytest.approx(cls, rel=1e-5)
    assert float(loss) == pytest.approx(obj + noobj + cls, rel=1e-5)

    # Moving predictor 0's centre by 0.1 costs lambda_coord * 0.1**2 (= 0.05).
    grid[0, 0, 0, 0] = 0.6
    _, shifted = v1_loss(jnp.asarray(grid), jnp.asarray(boxes), jnp.asarray(classes),
                         image_size=IMAGE, boxes_per_cell=b)
    assert float(shifted["coord_loss"]) == pytest.approx(5.0 * 0.01, rel=1e-4)


def test_decode_and_nms_recover_boxes_encoded_in_a_perfect_grid():
    s, b, c = 4, 2, 3
    gt = np.array([[4, 6, 20, 30], [40, 8, 60, 20], [18, 34, 50, 62]], np.float32)
    gt_classes = np.array([2, 0, 1])
    grid = np.zeros((1, s, s, 5 * b + c), np.float32)
    for box, cls in zip(gt, gt_classes, strict=True):
        cx, cy = (box[0] + box[2]) / 2 / IMAGE, (box[1] + box[3]) / 2 / IMAGE
        w, h = (box[2] - box[0]) / IMAGE, (box[3] - box[1]) / IMAGE
        i, j = int(cy * s), int(cx * s)
        grid[0, i, j, 0:5] = [cx * s - j, cy * s - i, np.sqrt(w), np.sqrt(h), 0.9]
        grid[0, i, j, 5 * b + cls] = 1.0
    detector = create("yolo_v1", num_classes=c, grid_size=s, boxes_per_cell=b)
    task = DetectionTask(c, ["a", "b", "c"], IMAGE, detector,
                         DetectionSection(max_detections=10, score_threshold=0.1))
    dets = jax.jit(task.decode)({"grid": jnp.asarray(grid)})
    keep = np.asarray(dets["classes"][0]) >= 0
    assert keep.sum() == 3
    order = np.argsort(np.asarray(dets["classes"][0])[keep])
    np.testing.assert_allclose(np.asarray(dets["boxes"][0])[keep][order],
                               gt[np.argsort(gt_classes)], atol=1e-4)
    np.testing.assert_allclose(np.asarray(dets["scores"][0])[keep], 0.9, rtol=1e-6)


def test_model_shapes_and_gradient_flow():
    model = create("yolo", num_classes=3, backbone_width=8, grid_size=5, hidden_units=32)
    x = jnp.zeros((2, 64, 64, 3))
    # Jitted: eagerly, every op of the init compiles on its own.
    variables = jax.jit(lambda key: model.init(key, x, train=False))(jax.random.key(0))
    out = jax.jit(lambda v: model.apply(v, x, train=False))(variables)
    assert out["grid"].shape == (2, 5, 5, 13)


@pytest.mark.slow  # a minute of training steps; the shapes and gradient-flow tests run in CI
def test_conv_head_reads_the_stage_of_the_cell_stride_and_learns_from_the_loss():
    model = create("yolo_v1", num_classes=3, backbone_width=8, head="conv", grid_size=8,
                   head_width=8, head_convs=1, dropout_rate=0.0)
    x = jax.random.uniform(jax.random.key(1), (2, IMAGE, IMAGE, 3))
    variables = model.init(jax.random.key(0), x, train=False)
    # 64 px / 8 cells = stride 8: the backbone stops after its second stage.
    assert sorted({k.split("_")[0] for k in variables["params"]["ResNet_0"]}) == [
        "stage1", "stage2", "stem"]
    boxes = jnp.asarray([[[4, 6, 20, 30], [40, 8, 60, 20]]] * 2, jnp.float32)
    classes = jnp.asarray([[2, 0]] * 2, jnp.int32)

    def loss_fn(params):
        out, _ = model.apply({**variables, "params": params}, x, train=True,
                             mutable=["batch_stats"])
        assert out["grid"].shape == (2, 8, 8, 13)
        return model.loss(out, boxes, classes, IMAGE)[0]

    grads = jax.grad(loss_fn)(variables["params"])
    stem = grads["ResNet_0"]["stem_conv"]["kernel"]
    assert float(jnp.max(jnp.abs(stem))) > 0


def test_cell_collisions_count_boxes_sharing_a_cell():
    # 64 px, 4x4 grid (16 px cells): boxes 0 and 1 centre in cell (0, 0), box 2 alone,
    # the last entry is padding; image 1 has two boxes in cell (3, 3).
    boxes = np.array([[[0, 0, 10, 10], [2, 2, 20, 20], [40, 40, 50, 50], [0, 0, 10, 10]],
                      [[50, 50, 60, 60], [52, 52, 62, 62], [0, 0, 0, 0], [0, 0, 0, 0]]],
                     np.float32)
    classes = np.array([[0, 1, 2, -1], [0, 0, -1, -1]])
    assert cell_collisions(boxes, classes, grid_size=4, image_size=IMAGE) == 2
    assert cell_collisions(boxes, classes, grid_size=64, image_size=IMAGE) == 0
