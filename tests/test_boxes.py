"""vision_jax.ops.boxes: hand-computed IoU values, NumPy loop references, NMS under jit."""

from __future__ import annotations

import itertools
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vision_jax.ops import boxes as bx

# ---------------------------------------------------------------- references (plain loops)


def _ref_iou_terms(a, b):
    """IoU, GIoU and CIoU of two xyxy boxes, straight from the papers' definitions."""
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    inter_w = max(0.0, min(ax1, bx1) - max(ax0, bx0))
    inter_h = max(0.0, min(ay1, by1) - max(ay0, by0))
    inter = inter_w * inter_h
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    iou = inter / union if union > 0 else 0.0
    hull_w = max(ax1, bx1) - min(ax0, bx0)
    hull_h = max(ay1, by1) - min(ay0, by0)
    hull = hull_w * hull_h
    giou = iou - (hull - union) / hull if hull > 0 else iou
    centre_dist = ((ax0 + ax1) / 2 - (bx0 + bx1) / 2) ** 2 + (
        (ay0 + ay1) / 2 - (by0 + by1) / 2
    ) ** 2
    diagonal = hull_w**2 + hull_h**2
    v = (
        4
        / math.pi**2
        * (math.atan((ax1 - ax0) / (ay1 - ay0)) - math.atan((bx1 - bx0) / (by1 - by0))) ** 2
    )
    alpha = v / (1 - iou + v) if (1 - iou + v) > 0 else 0.0
    ciou = iou - centre_dist / diagonal - alpha * v
    return iou, giou, ciou


def _ref_pairwise(a, b, which):
    out = np.zeros(a.shape[:-1] + (b.shape[-2],))
    for index in np.ndindex(a.shape[:-1]):
        for m in range(b.shape[-2]):
            out[index + (m,)] = _ref_iou_terms(a[index], b[index[:-1] + (m,)])[which]
    return out


def _ref_nms(boxes, scores, classes, iou_threshold, score_threshold, max_detections):
    """Textbook greedy NMS per class: visit by descending score, keep unless a kept box of
    the same class overlaps it by more than the threshold."""
    order = np.argsort(-scores, kind="stable")
    kept = []
    for i in order:
        if scores[i] <= score_threshold or classes[i] < 0:
            continue
        suppressed = False
        for j in kept:
            if classes[j] != classes[i]:
                continue
            box_i, box_j = boxes[i], boxes[j]
            iw = max(0.0, min(box_i[2], box_j[2]) - max(box_i[0], box_j[0]))
            ih = max(0.0, min(box_i[3], box_j[3]) - max(box_i[1], box_j[1]))
            inter = np.float32(iw * ih)
            area_i = (box_i[2] - box_i[0]) * (box_i[3] - box_i[1])
            area_j = (box_j[2] - box_j[0]) * (box_j[3] - box_j[1])
            # float32 like the JAX code, threshold included.
            if inter / np.float32(area_i + area_j - inter) > np.float32(iou_threshold):
                suppressed = True
                break
        if not suppressed:
            kept.append(i)
    return kept[:max_detections]


def _random_xyxy(rng, shape):
    corner = rng.uniform(0, 50, shape + (2,))
    size = rng.uniform(1, 30, shape + (2,))
    return np.concatenate([corner, corner + size], axis=-1)


# ---------------------------------------------------------------- conversions


def test_convert_hand_values():
    xyxy = jnp.array([1.0, 2.0, 5.0, 8.0])
    chex.assert_trees_all_close(bx.convert(xyxy, "xyxy", "xywh"), jnp.array([1.0, 2, 4, 6]))
    chex.assert_trees_all_close(bx.convert(xyxy, "xyxy", "cxcywh"), jnp.array([3.0, 5, 4, 6]))
    chex.assert_trees_all_close(
        bx.convert(jnp.array([3.0, 5, 4, 6]), "cxcywh", "xywh"), jnp.array([1.0, 2, 4, 6])
    )


@pytest.mark.parametrize("src,dst", list(itertools.permutations(bx.FORMATS, 2)))
def test_convert_round_trips(src, dst):
    boxes = jnp.asarray(_random_xyxy(np.random.default_rng(0), (3, 5)), jnp.float32)
    there = jax.jit(bx.convert, static_argnums=(1, 2))(boxes, src, dst)
    chex.assert_shape(there, (3, 5, 4))
    chex.assert_trees_all_close(bx.convert(there, dst, src), boxes, atol=1e-4)


def test_normalize_uses_height_and_width():
    boxes = jnp.array([[10.0, 20.0, 30.0, 60.0]])
    normalised = bx.normalize(boxes, (100, 50))  # height 100, width 50
    chex.assert_trees_all_close(normalised, jnp.array([[0.2, 0.2, 0.6, 0.6]]))
    chex.assert_trees_all_close(bx.denormalize(normalised, (100, 50)), boxes)


def test_bad_format_and_shape_errors():
    with pytest.raises(ValueError, match="src"):
        bx.convert(jnp.zeros((2, 4)), "xxyy", "xyxy")
    with pytest.raises(ValueError, match="last axis of size 4"):
        bx.iou(jnp.zeros((2, 3)), jnp.zeros((2, 4)))
    with pytest.raises(ValueError, match="image_size"):
        bx.normalize(jnp.zeros((1, 4)), (1, 2, 3))


# ---------------------------------------------------------------- IoU family, by hand

SQUARE = [0.0, 0.0, 10.0, 10.0]
CASES = {
    # name: (a, b, IoU, GIoU, CIoU) with the arithmetic written out
    "identical": (SQUARE, SQUARE, 1.0, 1.0, 1.0),
    # gap of 1 between unit squares: hull 3, union 2 -> GIoU = -(3 - 2) / 3;
    # centres 2 apart, hull diagonal^2 = 3^2 + 1^2.
    "disjoint": ([0, 0, 1, 1], [2, 0, 3, 1], 0.0, -1 / 3, -4 / 10),
    # inner 4x4 inside 10x10: 16 / 100; hull = outer; centres (5,5),(4,4): 2 / (10^2 + 10^2).
    "nested": (SQUARE, [2, 2, 6, 6], 0.16, 0.16, 0.16 - 2 / 200),
    # half-shifted: 50 / 150; hull 15x10 = union; centres 5 apart: 25 / (15^2 + 10^2).
    "half_overlap": (SQUARE, [5, 0, 15, 10], 1 / 3, 1 / 3, 1 / 3 - 25 / 325),
}


@pytest.mark.parametrize("name", list(CASES))
def test_iou_giou_ciou_hand_computed(name):
    a, b, want_iou, want_giou, want_ciou = CASES[name]
    a, b = jnp.array([a], jnp.float32), jnp.array([b], jnp.float32)
    chex.assert_trees_all_close(bx.iou(a, b)[0, 0], jnp.float32(want_iou), atol=1e-6)
    chex.assert_trees_all_close(bx.giou(a, b)[0, 0], jnp.float32(want_giou), atol=1e-6)
    chex.assert_trees_all_close(bx.ciou(a, b)[0, 0], jnp.float32(want_ciou), atol=1e-6)


def test_ciou_aspect_ratio_term_by_hand():
    # 2x1 and 1x2 boxes sharing a corner: IoU 1/3, centres 0.5 apart squared, hull 2x2.
    v = 4 / math.pi**2 * (math.atan(2) - math.atan(0.5)) ** 2
    alpha = v / (1 - 1 / 3 + v)
    want = 1 / 3 - 0.5 / 8 - alpha * v
    got = bx.elementwise_ciou(jnp.array([0.0, 0, 2, 1]), jnp.array([0.0, 0, 1, 2]))
    chex.assert_trees_all_close(got, jnp.float32(want), atol=1e-6)


@pytest.mark.parametrize("which,fn", [(0, bx.iou), (1, bx.giou), (2, bx.ciou)])
def test_pairwise_matches_numpy_loops(which, fn):
    rng = np.random.default_rng(which)
    a, b = _random_xyxy(rng, (2, 6)), _random_xyxy(rng, (2, 7))
    got = jax.jit(fn)(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
    chex.assert_shape(got, (2, 6, 7))
    np.testing.assert_allclose(np.asarray(got), _ref_pairwise(a, b, which), atol=2e-5)
    assert (np.asarray(got) > 0).any() and (np.asarray(got) < 1).all()


@pytest.mark.parametrize(
    "which,fn", [(0, bx.elementwise_iou), (1, bx.elementwise_giou), (2, bx.elementwise_ciou)]
)
def test_elementwise_matches_numpy_loops(which, fn):
    rng = np.random.default_rng(10 + which)
    a, b = _random_xyxy(rng, (9,)), _random_xyxy(rng, (9,))
    got = fn(jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32))
    want = [_ref_iou_terms(x, y)[which] for x, y in zip(a, b, strict=True)]
    np.testing.assert_allclose(np.asarray(got), want, atol=2e-5)


def test_degenerate_boxes_give_zero_not_nan_and_finite_gradients():
    point = jnp.array([[3.0, 3.0, 3.0, 3.0]])
    assert float(bx.iou(point, point)[0, 0]) == 0.0
    assert float(bx.giou(point, point)[0, 0]) == 0.0
    for fn in (bx.elementwise_iou, bx.elementwise_giou, bx.elementwise_ciou):
        grads = jax.jit(jax.grad(lambda p, fn=fn: fn(p, p[::-1]).sum()))(jnp.zeros((2, 4)))
        assert np.isfinite(np.asarray(grads)).all(), fn.__name__


# ---------------------------------------------------------------- NMS


def test_nms_greedy_chain_by_hand():
    # IoU(a, b) = IoU(b, c) = 70 / 130 > 0.5, IoU(a, c) = 40 / 160: a suppresses b, and c
    # survives because only *kept* boxes suppress.
    boxes = jnp.array([[0.0, 0, 10, 10], [3, 0, 13, 10], [6, 0, 16, 10]])
    out_boxes, out_scores, out_classes, count = bx.nms(
        boxes, jnp.array([0.9, 0.8, 0.7]), jnp.array([0, 0, 0]), max_detections=4
    )
    assert int(count) == 2
    chex.assert_trees_all_close(out_boxes[:2], boxes[jnp.array([0, 2])])
    chex.assert_trees_all_close(out_scores, jnp.array([0.9, 0.7, 0.0, 0.0]))
    chex.assert_trees_all_equal(out_classes, jnp.array([0, 0, -1, -1]))
    # Different classes never suppress each other.
    _, _, _, count = bx.nms(boxes, jnp.array([0.9, 0.8, 0.7]), jnp.array([0, 1, 2]))
    assert int(count) == 3


def _clustered_boxes(rng, num_boxes):
    """Integer-grid boxes jittered around a few centres, so many overlap."""
    centres = rng.uniform(10, 90, (5, 2))[rng.integers(0, 5, num_boxes)]
    half = rng.uniform(5, 15, (num_boxes, 2))
    jitter = rng.normal(0, 3, (num_boxes, 2))
    return np.round(np.concatenate([centres + jitter - half, centres + jitter + half], axis=1))


@pytest.mark.parametrize("seed", range(4))
def test_nms_matches_numpy_greedy_under_jit(seed):
    rng = np.random.default_rng(seed)
    num_boxes, max_detections = 64, 20
    boxes = _clustered_boxes(rng, num_boxes).astype(np.float32)
    scores = rng.random(num_boxes).astype(np.float32)
    classes = rng.integers(-1, 3, num_boxes)  # -1: padding entries
    iou_threshold, score_threshold = [(0.5, 0.2), (0.3, 0.0), (0.7, 0.5), (0.45, 0.1)][seed]

    run = jax.jit(
        lambda b, s, c: bx.nms(
            b,
            s,
            c,
            iou_threshold=iou_threshold,
            score_threshold=score_threshold,
            max_detections=max_detections,
        )
    )
    out_boxes, out_scores, out_classes, count = run(boxes, scores, classes)
    kept = _ref_nms(boxes, scores, classes, iou_threshold, score_threshold, max_detections)
    assert int(count) == len(kept) > 1
    np.testing.assert_array_equal(np.asarray(out_boxes[: len(kept)]), boxes[kept])
    np.testing.assert_array_equal(np.asarray(out_scores[: len(kept)]), scores[kept])
    np.testing.assert_array_equal(np.asarray(out_classes[: len(kept)]), classes[kept])
    assert (np.asarray(out_scores[len(kept) :]) == 0).all()
    assert (np.asarray(out_classes[len(kept) :]) == -1).all()


def test_nms_truncates_pads_and_top_k():
    rng = np.random.default_rng(7)
    boxes = _clustered_boxes(rng, 40).astype(np.float32)
    scores = rng.random(40).astype(np.float32)
    classes = rng.integers(0, 4, 40)
    kept = _ref_nms(boxes, scores, classes, 0.5, 0.0, 100)
    assert len(kept) > 5
    # Truncation keeps the highest-scoring survivors.
    _, out_scores, _, count = bx.nms(boxes, scores, classes, score_threshold=0.0, max_detections=5)
    assert int(count) == 5
    np.testing.assert_array_equal(np.asarray(out_scores), scores[kept[:5]])
    # Fewer inputs than outputs: padded to max_detections.
    out_boxes, out_scores, _, count = bx.nms(
        boxes, scores, classes, score_threshold=0.0, max_detections=64
    )
    chex.assert_shape(out_boxes, (64, 4))
    assert int(count) == len(kept)
    # pre_nms_top_k keeping every box above the score threshold changes nothing.
    threshold = float(np.sort(scores)[-30])  # strict ">": 29 candidates, all in the top 30
    full = bx.nms(boxes, scores, classes, score_threshold=threshold, max_detections=64)
    top = bx.nms(
        boxes, scores, classes, score_threshold=threshold, max_detections=64, pre_nms_top_k=30
    )
    chex.assert_trees_all_equal(top, full)
    assert int(full[3]) == len(_ref_nms(boxes, scores, classes, 0.5, threshold, 64))
    # Class-agnostic: classes=None.
    agnostic = _ref_nms(boxes, scores, np.zeros(40, int), 0.5, 0.0, 100)
    assert int(bx.nms(boxes, scores, None, score_threshold=0.0)[3]) == len(agnostic)


def test_batched_nms_matches_per_image_reference():
    rng = np.random.default_rng(11)
    batch, num_boxes = 3, 32
    boxes = np.stack([_clustered_boxes(rng, num_boxes) for _ in range(batch)]).astype(np.float32)
    scores = rng.random((batch, num_boxes)).astype(np.float32)
    classes = rng.integers(0, 2, (batch, num_boxes))
    out_boxes, out_scores, out_classes, counts = jax.jit(
        lambda b, s, c: bx.batched_nms(b, s, c, score_threshold=0.1, max_detections=16)
    )(boxes, scores, classes)
    chex.assert_shape(
        [out_boxes, out_scores, out_classes, counts],
        [(batch, 16, 4), (batch, 16), (batch, 16), (batch,)],
    )
    for i in range(batch):
        kept = _ref_nms(boxes[i], scores[i], classes[i], 0.5, 0.1, 16)
        assert int(counts[i]) == len(kept)
        np.testing.assert_array_equal(np.asarray(out_boxes[i, : len(kept)]), boxes[i][kept])


def test_nms_rejects_bad_shapes():
    with pytest.raises(ValueError, match="scores"):
        bx.nms(jnp.zeros((4, 4)), jnp.zeros((3,)), jnp.zeros((4,), jnp.int32))
    with pytest.raises(ValueError, match="classes must be integer"):
        bx.nms(jnp.zeros((4, 4)), jnp.zeros((4,)), jnp.zeros((4,)))
