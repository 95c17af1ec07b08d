"""COCO mAP: vision_jax.metrics.detection against pycocotools' COCOeval on generated data."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from vision_jax.metrics.detection import DetectionEvaluator, evaluate_detections

IMAGE_SIZE = 320.0


def _xyxy_to_coco_bbox(box) -> list[float]:
    x0, y0, x1, y1 = np.asarray(box, np.float64)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def _coco_stats(gt: list[dict], dt: list[dict], num_classes: int) -> COCOeval:
    """Runs pycocotools on the same data; image i has COCO id i + 1, class c id c + 1."""
    images = [{"id": i + 1, "width": 320, "height": 320} for i in range(len(gt))]
    categories = [{"id": c + 1, "name": f"class{c}"} for c in range(num_classes)]
    annotations = []
    for i, image in enumerate(gt):
        crowd = image.get("iscrowd", np.zeros(len(image["classes"]), bool))
        for j, (box, cls) in enumerate(zip(image["boxes"], image["classes"], strict=True)):
            bbox = _xyxy_to_coco_bbox(box)
            area = float(image["area"][j]) if "area" in image else bbox[2] * bbox[3]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i + 1,
                    "category_id": int(cls) + 1,
                    "bbox": bbox,
                    "area": area,
                    "iscrowd": int(crowd[j]),
                }
            )
    coco_gt = COCO()
    coco_gt.dataset = {"images": images, "categories": categories, "annotations": annotations}
    results = [
        {
            "image_id": i + 1,
            "category_id": int(cls) + 1,
            "bbox": _xyxy_to_coco_bbox(box),
            "score": float(score),
        }
        for i, image in enumerate(dt)
        for box, score, cls in zip(image["boxes"], image["scores"], image["classes"], strict=True)
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(results)
        else:  # loadRes cannot take an empty list; an empty result set is this.
            coco_dt = COCO()
            coco_dt.dataset = {"images": images, "categories": categories, "annotations": []}
            coco_dt.createIndex()
        coco_eval = COCOeval(coco_gt, coco_dt, "bbox")
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return coco_eval


def _assert_matches_coco(gt, dt, num_classes):
    ours = evaluate_detections(gt, dt, num_classes)
    reference = _coco_stats(gt, dt, num_classes)
    stats = reference.stats
    expected = {
        "map": stats[0],
        "map50": stats[1],
        "map75": stats[2],
        "map_small": stats[3],
        "map_medium": stats[4],
        "map_large": stats[5],
        "mar_100": stats[8],
        "mar_small": stats[9],
        "mar_medium": stats[10],
        "mar_large": stats[11],
    }
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-4), key
    precision = reference.eval["precision"][:, :, :, 0, 2]  # area all, maxDets 100
    defined = (precision > -1).all(axis=(0, 1))
    per_class = np.where(defined, precision.mean(axis=(0, 1)), -1.0)
    per_class50 = np.where(defined, precision[0].mean(axis=0), -1.0)
    np.testing.assert_allclose(ours["per_class_ap"], per_class, atol=1e-4)
    np.testing.assert_allclose(ours["per_class_ap50"], per_class50, atol=1e-4)
    return ours


def _random_boxes(rng, count, min_size=4.0, max_size=200.0):
    size = rng.uniform(min_size, max_size, (count, 2))
    corner = rng.uniform(0, IMAGE_SIZE - size)
    return np.concatenate([corner, corner + size], axis=1)


def _jitter(rng, boxes, scale):
    wh = np.concatenate([boxes[:, 2:] - boxes[:, :2]] * 2, axis=1)
    moved = boxes + rng.normal(0, scale, boxes.shape) * wh
    lo = np.minimum(moved[:, :2], moved[:, 2:])
    hi = np.maximum(moved[:, :2], moved[:, 2:])
    return np.concatenate([lo, hi], axis=1)


def _random_dataset(rng, num_images, num_classes, gt_classes, max_gt=8, false_positives=4):
    """Noisy detections of the ground truth plus false positives of any class."""
    gt, dt = [], []
    for _ in range(num_images):
        count = int(rng.integers(0, max_gt + 1))
        boxes = _random_boxes(rng, count)
        classes = rng.choice(gt_classes, count)
        gt.append({"boxes": boxes, "classes": classes})
        found = rng.random(count) < 0.8
        extra = int(rng.integers(0, false_positives + 1))
        dt_boxes = np.concatenate([_jitter(rng, boxes[found], 0.1), _random_boxes(rng, extra)])
        dt_classes = np.concatenate([classes[found], rng.integers(0, num_classes, extra)])
        dt.append({"boxes": dt_boxes, "scores": rng.random(len(dt_boxes)), "classes": dt_classes})
    return gt, dt


def test_hand_computed_single_box():
    gt = [{"boxes": np.array([[0.0, 0.0, 10.0, 10.0]]), "classes": np.array([0])}]
    # Width 10 -> 6 overlaps: IoU = 60 / 100 = 0.6, a match at thresholds .50, .55, .60 only.
    dt = [{"boxes": np.array([[0.0, 0.0, 6.0, 10.0]]), "scores": [0.9], "classes": [0]}]
    result = evaluate_detections(gt, dt, num_classes=1)
    assert result["map"] == pytest.approx(3 / 10)
    assert result["map50"] == pytest.approx(1.0)
    assert result["map75"] == pytest.approx(0.0)
    assert result["mar_100"] == pytest.approx(3 / 10)


def test_equal_ious_take_the_last_ground_truth():
    # The first detection sits exactly between two ground truths (IoU 80/120 with each);
    # COCOeval gives it the *last* one, g2, which leaves the second detection (a copy of
    # g2, IoU 60/140 with g1) unmatched.
    gt = [{"boxes": np.array([[0.0, 0, 10, 10], [4, 0, 14, 10]]), "classes": np.array([0, 0])}]
    dt = [
        {
            "boxes": np.array([[2.0, 0, 12, 10], [4, 0, 14, 10]]),
            "scores": np.array([0.9, 0.8]),
            "classes": np.array([0, 0]),
        }
    ]
    # Thresholds .50-.65: d1 is a TP at recall 1/2, d2 a FP -> 51 of 101 recall points at 1.
    # Thresholds .70-.95: d1 is a FP, d2 a TP -> 51 recall points at precision 1/2.
    expected = (4 * 51 / 101 + 6 * 0.5 * 51 / 101) / 10
    result = _assert_matches_coco(gt, dt, num_classes=1)
    assert result["map"] == pytest.approx(expected)


def test_random_predictions_match_cocoeval():
    rng = np.random.default_rng(0)
    # Class 3 has no ground truth at all (but gets false positives): a missing class.
    gt, dt = _random_dataset(rng, num_images=25, num_classes=4, gt_classes=[0, 1, 2])
    result = _assert_matches_coco(gt, dt, num_classes=4)
    assert result["per_class_ap"][3] == -1.0
    assert 0.0 < result["map"] < 1.0


def test_perfect_predictions_match_cocoeval():
    rng = np.random.default_rng(1)
    gt, _ = _random_dataset(rng, num_images=10, num_classes=3, gt_classes=[0, 1, 2])
    dt = [
        {"boxes": g["boxes"], "scores": rng.random(len(g["boxes"])), "classes": g["classes"]}
        for g in gt
    ]
    result = _assert_matches_coco(gt, dt, num_classes=3)
    assert result["map"] == pytest.approx(1.0)


def test_empty_predictions_match_cocoeval():
    rng = np.random.default_rng(2)
    gt, _ = _random_dataset(rng, num_images=6, num_classes=3, gt_classes=[0, 1, 2])
    dt = [{"boxes": np.zeros((0, 4)), "scores": [], "classes": []} for _ in gt]
    result = _assert_matches_coco(gt, dt, num_classes=3)
    assert result["map"] == 0.0


def test_duplicates_and_tied_scores_match_cocoeval():
    rng = np.random.default_rng(3)
    gt, _ = _random_dataset(rng, num_images=12, num_classes=3, gt_classes=[0, 1, 2])
    # Identical duplicate ground truths too.
    gt[0] = {
        "boxes": np.repeat(_random_boxes(rng, 2), 2, axis=0),
        "classes": np.array([1, 1, 2, 2]),
    }
    dt = []
    for image in gt:
        # Three near-copies of each box with scores on a coarse grid, so many are tied:
        # the tie order (input order, then image order) decides which copy is the TP.
        boxes = np.concatenate([_jitter(rng, image["boxes"], 0.03) for _ in range(3)])
        classes = np.tile(image["classes"], 3)
        scores = np.round(rng.random(len(boxes)), 1)
        dt.append({"boxes": boxes, "scores": scores, "classes": classes})
    _assert_matches_coco(gt, dt, num_classes=3)


def test_crowded_images_over_max_detections_match_cocoeval():
    rng = np.random.default_rng(4)
    gt, dt = [], []
    for _ in range(3):
        # 60 heavily overlapping boxes of one class around one spot, 150 detections:
        # only the top 100 per image and class count.
        centre = rng.uniform(100, 220, 2)
        size = rng.uniform(20, 80, (60, 2))
        offset = rng.normal(0, 8, (60, 2))
        boxes = np.concatenate([centre + offset - size / 2, centre + offset + size / 2], axis=1)
        gt.append({"boxes": boxes, "classes": np.zeros(60, int)})
        dt_boxes = np.concatenate(
            [_jitter(rng, boxes, 0.05), _jitter(rng, boxes, 0.1), _jitter(rng, boxes, 0.2)[:30]]
        )
        dt.append({"boxes": dt_boxes, "scores": rng.random(150), "classes": np.zeros(150, int)})
    _assert_matches_coco(gt, dt, num_classes=2)


def test_crowd_annotations_and_given_areas_match_cocoeval():
    rng = np.random.default_rng(5)
    gt, dt = _random_dataset(rng, num_images=15, num_classes=3, gt_classes=[0, 1, 2])
    for g, d in zip(gt, dt, strict=True):
        # One large crowd region per image with several detections inside it.
        crowd_box = _random_boxes(rng, 1, 120, 250)
        crowd_class = int(rng.integers(0, 3))
        inside = crowd_box[0, :2] + rng.uniform(0, 0.5, (4, 2)) * (
            crowd_box[0, 2:] - crowd_box[0, :2]
        )
        inside_boxes = np.concatenate([inside, inside + rng.uniform(5, 40, (4, 2))], axis=1)
        g["boxes"] = np.concatenate([g["boxes"], crowd_box])
        g["classes"] = np.append(g["classes"], crowd_class)
        g["iscrowd"] = np.append(np.zeros(len(g["boxes"]) - 1, bool), True)
        # Mask areas differ from box areas: COCOeval uses the given area for gt ranges.
        g["area"] = (g["boxes"][:, 2] - g["boxes"][:, 0]) * (g["boxes"][:, 3] - g["boxes"][:, 1])
        g["area"] = g["area"] * rng.uniform(0.3, 1.0, len(g["area"]))
        d["boxes"] = np.concatenate([d["boxes"], inside_boxes])
        d["scores"] = np.concatenate([d["scores"], rng.random(4)])
        d["classes"] = np.append(d["classes"], [crowd_class] * 4)
    # Class 3 appears only as one crowd region (with detections in it): no defined AP.
    gt[0]["classes"][-1] = 3
    dt[0]["classes"][-4:] = 3
    result = _assert_matches_coco(gt, dt, num_classes=4)
    assert result["per_class_ap"][3] == -1.0


def test_accumulator_batches_equal_one_shot_and_padding_is_dropped():
    rng = np.random.default_rng(6)
    gt, dt = _random_dataset(rng, num_images=8, num_classes=3, gt_classes=[0, 1, 2])
    expected = evaluate_detections(gt, dt, num_classes=3)

    def padded(rows, key, width, fill):
        out = np.full((len(rows), width) + np.shape(rows[0][key])[1:], fill, np.float64)
        for i, row in enumerate(rows):
            out[i, : len(row[key])] = row[key]
        return out

    evaluator = DetectionEvaluator(num_classes=3)
    # Two batches, added out of id order, with one padding image (id -1) in the second.
    for ids in ([4, 5, 6, 7], [0, 1, 2, 3, -1]):
        g = [gt[i] if i >= 0 else gt[0] for i in ids]
        d = [dt[i] if i >= 0 else dt[0] for i in ids]
        evaluator.add_batch(
            np.array(ids),
            padded(g, "boxes", 10, 0.0),
            padded(g, "classes", 10, -1),
            padded(d, "boxes", 16, 0.0),
            padded(d, "scores", 16, 0.0),
            padded(d, "classes", 16, -1),
        )
    result = evaluator.compute()
    reordered = evaluate_detections(gt, dt, num_classes=3, area_ranges=("small", "all"))
    assert "map_large" not in reordered and reordered["map_small"] == expected["map_small"]
    for key in ("map", "map50", "map75", "mar_100"):
        assert reordered[key] == expected[key]
        assert result[key] == pytest.approx(expected[key], abs=1e-12)
    np.testing.assert_allclose(result["per_class_ap"], expected["per_class_ap"])


def test_bad_inputs_raise_clear_errors():
    evaluator = DetectionEvaluator(num_classes=2)
    box = np.array([[0.0, 0.0, 5.0, 5.0]])
    with pytest.raises(ValueError, match="gt_classes"):
        evaluator.add(0, box, [2], box, [0.5], [0])
    with pytest.raises(ValueError, match="xyxy"):
        evaluator.add(0, np.array([[5.0, 5.0, 1.0, 1.0]]), [0], box, [0.5], [0])
    with pytest.raises(ValueError, match="dt_scores"):
        evaluator.add(0, box, [0], box, [0.5, 0.2], [0])
    evaluator.add(0, box, [0], box, [0.5], [0])
    with pytest.raises(ValueError, match="image_id"):
        evaluator.add(0, box, [0], box, [0.5], [0])
    with pytest.raises(ValueError, match="area_ranges"):
        DetectionEvaluator(num_classes=2, area_ranges=("tiny",))
