"""COCO-style detection mAP in NumPy, matching ``pycocotools.cocoeval.COCOeval`` (bbox).

Input format, one image at a time (NumPy or JAX arrays, cast to float64):

- ground truth: ``gt_boxes`` (G, 4) absolute ``xyxy`` pixels, ``gt_classes`` (G,) ints in
  ``[0, num_classes)``, optional ``gt_iscrowd`` (G,) bools, optional ``gt_areas`` (G,)
  (default: box width * height, which is what COCOeval uses when annotations carry no
  mask area);
- detections: ``dt_boxes`` (D, 4) absolute ``xyxy``, ``dt_scores`` (D,), ``dt_classes`` (D,).

Entries with a negative class are padding and are dropped, so the padded outputs of
``vision_jax.ops.boxes.nms`` (class -1) and padded ground-truth arrays can be passed
as they are. ``add_batch`` takes whole padded batches; image ids < 0 mark padding
examples.

What is computed is exactly COCOeval's ``evaluate()`` + ``accumulate()`` +
``summarize()`` for ``iouType="bbox"``: IoU thresholds .50:.05:.95, 101-point
interpolated precision, at most ``max_detections`` (100) detections per image and class,
greedy matching by descending score per image and class (a detection takes the
highest-IoU ground truth still free, preferring non-ignored ones), crowd ground truth
matched by intersection over the detection's area, never used up, and ignored (neither
true positive nor counted in recall), and the area ranges all / small / medium / large.
Undefined values (a class without non-crowd ground truth, or nothing to average) are -1,
as in ``COCOeval.stats``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# Built exactly as pycocotools builds them, so threshold comparisons agree bit for bit.
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
AREA_RANGES = {
    "all": (0.0, 1e5**2),
    "small": (0.0, 32.0**2),
    "medium": (32.0**2, 96.0**2),
    "large": (96.0**2, 1e5**2),
}


@dataclass
class _ImageClassResult:
    """Matching of one image and one class, for every area range and IoU threshold."""

    scores: np.ndarray  # (D,) detection scores, descending
    matched: np.ndarray  # (A, T, D) detection matched a ground truth
    ignored: np.ndarray  # (A, T, D) detection is neither TP nor FP
    num_gt: np.ndarray  # (A,) non-ignored ground truths


def _xyxy_to_xywh(name: str, boxes) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)  # lets callers pass [] or np.zeros((0,)) for "none"
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must be (N, 4) xyxy boxes, got shape {boxes.shape}.")
    wh = boxes[:, 2:] - boxes[:, :2]
    if np.any(wh < 0):
        raise ValueError(f"{name} has x_max < x_min or y_max < y_min; boxes must be xyxy.")
    return np.concatenate([boxes[:, :2], wh], axis=1)


def _vector(name: str, values, length: int, dtype) -> np.ndarray:
    values = np.asarray(values, dtype).reshape(-1)
    if values.shape != (length,):
        raise ValueError(f"{name} must have {length} entries, one per box, got {values.size}.")
    return values


def coco_box_iou(dt_xywh: np.ndarray, gt_xywh: np.ndarray, gt_crowd: np.ndarray) -> np.ndarray:
    """(D, G) IoU as pycocotools' ``maskUtils.iou`` computes it for boxes.

    For a crowd ground truth the denominator is the detection's area, so a detection
    inside a crowd region scores 1. Same operation order as the C code, so the values
    agree to the last bit.
    """
    dx, dy, dw, dh = (dt_xywh[:, i, None] for i in range(4))
    gx, gy, gw, gh = (gt_xywh[None, :, i] for i in range(4))
    dt_area, gt_area = dw * dh, gw * gh
    width = np.minimum(dw + dx, gw + gx) - np.maximum(dx, gx)
    height = np.minimum(dh + dy, gh + gy) - np.maximum(dy, gy)
    overlaps = (width > 0) & (height > 0)
    intersection = np.where(overlaps, width * height, 0.0)
    union = np.where(gt_crowd[None, :], dt_area, dt_area + gt_area - intersection)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(overlaps, intersection / union, 0.0)


def _greedy_match(
    ious: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval's matching for every row (an area range x IoU threshold pair) at once.

    Args:
      ious: (D, G), detections sorted by descending score.
      gt_ignore: (R, G) per row. gt_crowd: (G,). thresholds: (R,).

    Returns (matched, ignored), both (R, D): whether each detection matched, and
    whether the ground truth it matched is an ignored one.

    COCOeval walks the ground truths with the non-ignored ones first and, for each
    detection, keeps the last one whose IoU is >= the best so far (starting at the
    threshold); it only falls back to ignored ground truths when no non-ignored one
    qualifies. So a detection takes the *last* (in input order) arg-max of IoU among
    the free non-ignored ground truths, else among the free ignored ones.
    """
    num_rows, num_gt = gt_ignore.shape
    num_dt = ious.shape[0]
    matched = np.zeros((num_rows, num_dt), bool)
    ignored = np.zeros((num_rows, num_dt), bool)
    if num_gt == 0 or num_dt == 0:
        return matched, ignored
    taken = np.zeros((num_rows, num_gt), bool)
    rows = np.arange(num_rows)
    threshold = np.minimum(thresholds, 1 - 1e-10)[:, None]
    for d in range(num_dt):
        # Crowd regions can absorb any number of detections.
        qualifies = (~taken | gt_crowd[None, :]) & (ious[d][None, :] >= threshold)
        best = np.full(num_rows, -1)
        for group in (~gt_ignore, gt_ignore):
            pick = qualifies & group
            # Reversed arg-max = the last index among equal maxima.
            scores = np.where(pick, ious[d][None, :], -1.0)[:, ::-1]
            last_best = num_gt - 1 - np.argmax(scores, axis=1)
            best = np.where((best < 0) & pick.any(axis=1), last_best, best)
        hit = best >= 0
        matched[hit, d] = True
        ignored[hit, d] = gt_ignore[rows[hit], best[hit]]
        taken[rows[hit], best[hit]] = True
    return matched, ignored


def _precision_recall(
    scores: np.ndarray, matched: np.ndarray, ignored: np.ndarray, num_gt: int
) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate for one class and area: precision (T, R) and recall (T,)."""
    order = np.argsort(-scores, kind="mergesort")
    matched, ignored = matched[:, order], ignored[:, order]
    true_pos = np.cumsum(matched & ~ignored, axis=1).astype(float)
    false_pos = np.cumsum(~matched & ~ignored, axis=1).astype(float)
    num_dt = scores.shape[0]
    num_thresholds = matched.shape[0]
    if num_dt == 0:
        return np.zeros((num_thresholds, RECALL_THRESHOLDS.size)), np.zeros(num_thresholds)
    recall = true_pos / num_gt
    precision = true_pos / (false_pos + true_pos + np.spacing(1))
    # Precision envelope: the best precision at this recall or any higher one.
    precision = np.maximum.accumulate(precision[:, ::-1], axis=1)[:, ::-1]
    interpolated = np.zeros((num_thresholds, RECALL_THRESHOLDS.size))
    for t in range(num_thresholds):
        index = np.searchsorted(recall[t], RECALL_THRESHOLDS, side="left")
        reached = index < num_dt
        interpolated[t, reached] = precision[t, index[reached]]
    return interpolated, recall[:, -1]


def _mean_defined(values: np.ndarray) -> float:
    defined = values[values > -1]
    return float(defined.mean()) if defined.size else -1.0


class DetectionEvaluator:
    """Accumulates images across eval batches; ``compute()`` gives COCO metrics.

    Matching runs in ``add``, so only small per-detection flags are kept between calls.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        max_detections: int = 100,
        area_ranges: Sequence[str] = ("all", "small", "medium", "large"),
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}.")
        if max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {max_detections}.")
        unknown = [name for name in area_ranges if name not in AREA_RANGES]
        if unknown or "all" not in area_ranges:
            raise ValueError(
                f"area_ranges={tuple(area_ranges)!r} must include 'all' and only names from "
                f"{tuple(AREA_RANGES)}."
            )
        self.num_classes = num_classes
        self.max_detections = max_detections
        # "all" first: the summary reads index 0 as the all-areas range.
        self.area_ranges = ("all",) + tuple(name for name in area_ranges if name != "all")
        self._area_bounds = np.array([AREA_RANGES[name] for name in self.area_ranges])
        self._images: dict[int, dict[int, _ImageClassResult]] = {}

    def reset(self) -> None:
        self._images = {}

    def _classes(self, name: str, values, length: int) -> np.ndarray:
        values = _vector(name, values, length, np.int64)
        if np.any(values >= self.num_classes):
            raise ValueError(
                f"{name} has class {values.max()} >= num_classes={self.num_classes}; "
                "classes are 0-based and negative means padding."
            )
        return values

    def add(
        self,
        image_id: int,
        gt_boxes,
        gt_classes,
        dt_boxes,
        dt_scores,
        dt_classes,
        *,
        gt_iscrowd=None,
        gt_areas=None,
    ) -> None:
        """Adds one image's ground truth and detections (format in the module docstring)."""
        image_id = int(image_id)
        if image_id in self._images:
            raise ValueError(f"image_id {image_id} was already added; image ids must be unique.")
        gt_xywh = _xyxy_to_xywh("gt_boxes", gt_boxes)
        num_gt = gt_xywh.shape[0]
        gt_classes = self._classes("gt_classes", gt_classes, num_gt)
        crowd = (
            np.zeros(num_gt, bool)
            if gt_iscrowd is None
            else _vector("gt_iscrowd", gt_iscrowd, num_gt, bool)
        )
        areas = (
            gt_xywh[:, 2] * gt_xywh[:, 3]
            if gt_areas is None
            else _vector("gt_areas", gt_areas, num_gt, np.float64)
        )
        dt_xywh = _xyxy_to_xywh("dt_boxes", dt_boxes)
        num_dt = dt_xywh.shape[0]
        dt_scores = _vector("dt_scores", dt_scores, num_dt, np.float64)
        dt_classes = self._classes("dt_classes", dt_classes, num_dt)

        per_class = {}
        for class_id in np.union1d(gt_classes[gt_classes >= 0], dt_classes[dt_classes >= 0]):
            gt_sel = gt_classes == class_id
            dt_sel = np.flatnonzero(dt_classes == class_id)
            # Stable sort keeps input order among equal scores, as COCOeval does.
            dt_sel = dt_sel[np.argsort(-dt_scores[dt_sel], kind="mergesort")]
            dt_sel = dt_sel[: self.max_detections]
            per_class[int(class_id)] = self._evaluate_image_class(
                gt_xywh[gt_sel], crowd[gt_sel], areas[gt_sel], dt_xywh[dt_sel], dt_scores[dt_sel]
            )
        self._images[image_id] = per_class

    def _evaluate_image_class(self, gt_xywh, crowd, gt_areas, dt_xywh, dt_scores):
        low, high = self._area_bounds[:, 0, None], self._area_bounds[:, 1, None]
        gt_ignore = crowd[None, :] | (gt_areas[None, :] < low) | (gt_areas[None, :] > high)
        num_areas, num_thresholds = len(self.area_ranges), IOU_THRESHOLDS.size
        rows_ignore = np.repeat(gt_ignore, num_thresholds, axis=0)  # (A*T, G)
        rows_threshold = np.tile(IOU_THRESHOLDS, num_areas)
        ious = coco_box_iou(dt_xywh, gt_xywh, crowd)
        matched, ignored = _greedy_match(ious, rows_ignore, crowd, rows_threshold)
        matched = matched.reshape(num_areas, num_thresholds, -1)
        ignored = ignored.reshape(num_areas, num_thresholds, -1)
        # Unmatched detections outside the area range are not counted as false positives.
        dt_areas = dt_xywh[:, 2] * dt_xywh[:, 3]
        outside = (dt_areas[None, :] < low) | (dt_areas[None, :] > high)  # (A, D)
        ignored |= ~matched & outside[:, None, :]
        return _ImageClassResult(dt_scores, matched, ignored, (~gt_ignore).sum(axis=1))

    def add_batch(
        self,
        image_ids,
        gt_boxes,
        gt_classes,
        dt_boxes,
        dt_scores,
        dt_classes,
        *,
        gt_iscrowd=None,
        gt_areas=None,
    ) -> None:
        """Adds padded batches: (B,) ids (< 0 = padding image), (B, G, 4), (B, G),
        (B, D, 4), (B, D), (B, D), optional (B, G) iscrowd / areas."""
        image_ids = np.asarray(image_ids).reshape(-1)
        arrays = [np.asarray(a) for a in (gt_boxes, gt_classes, dt_boxes, dt_scores, dt_classes)]
        extras = [None if a is None else np.asarray(a) for a in (gt_iscrowd, gt_areas)]
        for name, array in zip(
            (
                "gt_boxes",
                "gt_classes",
                "dt_boxes",
                "dt_scores",
                "dt_classes",
                "gt_iscrowd",
                "gt_areas",
            ),
            arrays + extras,
            strict=True,
        ):
            if array is not None and array.shape[:1] != image_ids.shape:
                raise ValueError(
                    f"{name} must have a leading batch axis of {image_ids.size}, got {array.shape}."
                )
        for i, image_id in enumerate(image_ids):
            if image_id < 0:
                continue
            crowd, areas = (None if a is None else a[i] for a in extras)
            self.add(image_id, *(a[i] for a in arrays), gt_iscrowd=crowd, gt_areas=areas)

    def compute(self) -> dict:
        """COCO metrics over everything added so far.

        Returns ``map`` (AP@[.5:.95]), ``map50``, ``map75``, ``map_<area>`` for the other
        area ranges, ``mar_<max_detections>`` (AR, all areas), ``mar_<area>``, and
        ``per_class_ap`` / ``per_class_ap50`` arrays (num_classes,), -1 where undefined.
        """
        num_thresholds, num_recall = IOU_THRESHOLDS.size, RECALL_THRESHOLDS.size
        num_areas = len(self.area_ranges)
        precision = -np.ones((num_thresholds, num_recall, self.num_classes, num_areas))
        recall = -np.ones((num_thresholds, self.num_classes, num_areas))
        # COCOeval concatenates images in sorted id order; equal scores keep that order.
        image_ids = sorted(self._images)
        for class_id in range(self.num_classes):
            results = [self._images[i][class_id] for i in image_ids if class_id in self._images[i]]
            if not results:
                continue
            scores = np.concatenate([r.scores for r in results])
            matched = np.concatenate([r.matched for r in results], axis=-1)
            ignored = np.concatenate([r.ignored for r in results], axis=-1)
            num_gt = np.sum([r.num_gt for r in results], axis=0)
            for a in range(num_areas):
                if num_gt[a] == 0:
                    continue
                p, r = _precision_recall(scores, matched[a], ignored[a], int(num_gt[a]))
                precision[:, :, class_id, a] = p
                recall[:, class_id, a] = r
        return self._summarize(precision, recall)

    def _summarize(self, precision: np.ndarray, recall: np.ndarray) -> dict:
        # COCOeval.summarize: the mean of every defined (t, r, class) entry.
        iou50 = np.flatnonzero(IOU_THRESHOLDS == 0.5)
        iou75 = np.flatnonzero(IOU_THRESHOLDS == 0.75)
        summary = {
            "map": _mean_defined(precision[..., 0]),
            "map50": _mean_defined(precision[iou50, ..., 0]),
            "map75": _mean_defined(precision[iou75, ..., 0]),
        }
        for a, name in enumerate(self.area_ranges):
            if name != "all":
                summary[f"map_{name}"] = _mean_defined(precision[..., a])
        summary[f"mar_{self.max_detections}"] = _mean_defined(recall[..., 0])
        for a, name in enumerate(self.area_ranges):
            if name != "all":
                summary[f"mar_{name}"] = _mean_defined(recall[..., a])
        defined = precision[0, 0, :, 0] > -1
        summary["per_class_ap"] = np.where(defined, precision[..., 0].mean(axis=(0, 1)), -1.0)
        summary["per_class_ap50"] = np.where(
            defined, precision[iou50, ..., 0].mean(axis=(0, 1)), -1.0
        )
        return summary


def evaluate_detections(
    gt: Sequence[Mapping],
    dt: Sequence[Mapping],
    num_classes: int,
    **evaluator_kwargs,
) -> dict:
    """COCO metrics of a whole dataset given as two aligned lists (image ``i`` in both).

    ``gt[i]``: ``{"boxes": (G, 4) xyxy, "classes": (G,), "iscrowd"?: (G,), "area"?: (G,)}``;
    ``dt[i]``: ``{"boxes": (D, 4) xyxy, "scores": (D,), "classes": (D,)}``. Keyword
    arguments go to ``DetectionEvaluator``. Returns ``DetectionEvaluator.compute()``.
    """
    if len(gt) != len(dt):
        raise ValueError(
            f"gt has {len(gt)} images but dt has {len(dt)}; give one entry per "
            "image in both, with empty arrays where an image has none."
        )
    evaluator = DetectionEvaluator(num_classes, **evaluator_kwargs)
    for image_id, (gt_image, dt_image) in enumerate(zip(gt, dt, strict=True)):
        for name, entry, keys in (
            ("gt", gt_image, ("boxes", "classes")),
            ("dt", dt_image, ("boxes", "scores", "classes")),
        ):
            missing = [k for k in keys if k not in entry]
            if missing:
                raise ValueError(f"{name}[{image_id}] lacks {missing}; expected keys {keys}.")
        evaluator.add(
            image_id,
            gt_image["boxes"],
            gt_image["classes"],
            dt_image["boxes"],
            dt_image["scores"],
            dt_image["classes"],
            gt_iscrowd=gt_image.get("iscrowd"),
            gt_areas=gt_image.get("area"),
        )
    return evaluator.compute()
