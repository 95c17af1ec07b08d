"""Bounding boxes in JAX: format conversion, IoU family, and NMS with static shapes.

Boxes are the last axis of size 4. Formats:

- ``"xyxy"``: (x_min, y_min, x_max, y_max)
- ``"xywh"``: (x_min, y_min, width, height)   -- the COCO annotation format
- ``"cxcywh"``: (x_center, y_center, width, height)   -- the YOLO / DETR format

``x`` runs along the image width and ``y`` along its height. All functions are
pure ``jax.numpy`` and jit-able; NMS returns a fixed number of outputs (padded)
so it compiles once per input shape, which is what TPUs need.

IoU conventions:

- ``iou``, ``giou``, ``ciou`` are *pairwise*: ``(..., N, 4) x (..., M, 4) -> (..., N, M)``
  (what matching and NMS need).
- ``elementwise_iou``, ``elementwise_giou``, ``elementwise_ciou`` pair boxes one to one,
  ``(..., 4) x (..., 4) -> (...)`` with broadcasting (what regression losses need).
- All take ``xyxy`` boxes. Where a union (or enclosing box) has zero area the value is 0
  instead of NaN, so degenerate padding boxes are harmless.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

FORMATS = ("xyxy", "xywh", "cxcywh")


def _check_format(name: str, value: str) -> None:
    if value not in FORMATS:
        raise ValueError(f"{name}={value!r} is not a box format; use one of {FORMATS}.")


def _check_boxes(name: str, boxes: jax.Array) -> None:
    if boxes.ndim < 1 or boxes.shape[-1] != 4:
        raise ValueError(f"{name} must have a last axis of size 4, got shape {boxes.shape}.")


def _to_xyxy(boxes: jax.Array, src: str) -> jax.Array:
    a, b, c, d = jnp.moveaxis(boxes, -1, 0)
    if src == "xyxy":
        return boxes
    if src == "xywh":
        return jnp.stack([a, b, a + c, b + d], axis=-1)
    # cxcywh
    return jnp.stack([a - c / 2, b - d / 2, a + c / 2, b + d / 2], axis=-1)


def _from_xyxy(boxes: jax.Array, dst: str) -> jax.Array:
    x0, y0, x1, y1 = jnp.moveaxis(boxes, -1, 0)
    if dst == "xyxy":
        return boxes
    if dst == "xywh":
        return jnp.stack([x0, y0, x1 - x0, y1 - y0], axis=-1)
    # cxcywh
    return jnp.stack([(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], axis=-1)


@functools.partial(jax.jit, static_argnames=("src", "dst"))
def convert(boxes: jax.Array, src: str, dst: str) -> jax.Array:
    """Converts ``boxes`` (..., 4) from format ``src`` to format ``dst``."""
    _check_format("src", src)
    _check_format("dst", dst)
    boxes = jnp.asarray(boxes)
    _check_boxes("boxes", boxes)
    if src == dst:
        return boxes
    return _from_xyxy(_to_xyxy(boxes, src), dst)


def _image_scale(image_size: tuple[int, int], dtype) -> jax.Array:
    if len(image_size) != 2:
        raise ValueError(f"image_size must be (height, width), got {image_size!r}.")
    height, width = image_size
    # Every supported format stores (x-like, y-like, x-like, y-like), so one scale fits all.
    return jnp.asarray([width, height, width, height], dtype=dtype)


def normalize(boxes: jax.Array, image_size: tuple[int, int]) -> jax.Array:
    """Absolute pixel boxes (any format) -> coordinates in [0, 1] of an image (height, width)."""
    boxes = jnp.asarray(boxes)
    _check_boxes("boxes", boxes)
    dtype = jnp.result_type(boxes.dtype, jnp.float32)
    return boxes.astype(dtype) / _image_scale(image_size, dtype)


def denormalize(boxes: jax.Array, image_size: tuple[int, int]) -> jax.Array:
    """Boxes in [0, 1] (any format) -> absolute pixels of an image (height, width)."""
    boxes = jnp.asarray(boxes)
    _check_boxes("boxes", boxes)
    dtype = jnp.result_type(boxes.dtype, jnp.float32)
    return boxes.astype(dtype) * _image_scale(image_size, dtype)


@jax.jit
def area(boxes: jax.Array) -> jax.Array:
    """Area of ``xyxy`` boxes (..., 4) -> (...); inverted boxes count as empty."""
    boxes = jnp.asarray(boxes)
    _check_boxes("boxes", boxes)
    width = jnp.maximum(boxes[..., 2] - boxes[..., 0], 0)
    height = jnp.maximum(boxes[..., 3] - boxes[..., 1], 0)
    return width * height


def _safe_divide(numerator: jax.Array, denominator: jax.Array) -> jax.Array:
    # The double `where` keeps gradients finite where the denominator is zero.
    positive = denominator > 0
    return jnp.where(positive, numerator / jnp.where(positive, denominator, 1), 0)


def _intersection_union(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    top_left = jnp.maximum(a[..., :2], b[..., :2])
    bottom_right = jnp.minimum(a[..., 2:], b[..., 2:])
    overlap = jnp.maximum(bottom_right - top_left, 0)
    intersection = overlap[..., 0] * overlap[..., 1]
    union = area(a) + area(b) - intersection
    return intersection, union


def _enclosing_box(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(width, height) of the smallest box enclosing both."""
    top_left = jnp.minimum(a[..., :2], b[..., :2])
    bottom_right = jnp.maximum(a[..., 2:], b[..., 2:])
    size = jnp.maximum(bottom_right - top_left, 0)
    return size[..., 0], size[..., 1]


@jax.jit
def elementwise_iou(a: jax.Array, b: jax.Array) -> jax.Array:
    """IoU of ``xyxy`` boxes paired one to one: (..., 4) x (..., 4) -> (...), broadcasting."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    _check_boxes("a", a)
    _check_boxes("b", b)
    intersection, union = _intersection_union(a, b)
    return _safe_divide(intersection, union)


@jax.jit
def elementwise_giou(a: jax.Array, b: jax.Array) -> jax.Array:
    """Generalised IoU (Rezatofighi et al., 2019), one to one; in [-1, 1]."""
    a, b = jnp.asarray(a), jnp.asarray(b)
    _check_boxes("a", a)
    _check_boxes("b", b)
    intersection, union = _intersection_union(a, b)
    enclosing_w, enclosing_h = _enclosing_box(a, b)
    enclosing_area = enclosing_w * enclosing_h
    return _safe_divide(intersection, union) - _safe_divide(enclosing_area - union, enclosing_area)


def _aspect_angle(width: jax.Array, height: jax.Array) -> jax.Array:
    """arctan(width / height), finite with finite gradients for empty (0 x 0) boxes."""
    empty = (width == 0) & (height == 0)
    # arctan2's gradient is 0/0 at the origin; evaluate a harmless point there instead.
    return jnp.where(empty, 0.0, jnp.arctan2(width, jnp.where(empty, 1.0, height)))


@jax.jit
def elementwise_ciou(a: jax.Array, b: jax.Array) -> jax.Array:
    """Complete IoU (Zheng et al., 2020), one to one.

    ``IoU - d^2 / c^2 - alpha * v`` with ``d`` the distance between centres, ``c`` the
    diagonal of the enclosing box, ``v`` the aspect-ratio discrepancy and
    ``alpha = v / (1 - IoU + v)``. As in the paper, ``alpha`` is treated as a constant
    (no gradient flows through it).
    """
    a, b = jnp.asarray(a), jnp.asarray(b)
    _check_boxes("a", a)
    _check_boxes("b", b)
    intersection, union = _intersection_union(a, b)
    iou_value = _safe_divide(intersection, union)

    centre_a = (a[..., :2] + a[..., 2:]) / 2
    centre_b = (b[..., :2] + b[..., 2:]) / 2
    centre_distance_sq = jnp.sum((centre_a - centre_b) ** 2, axis=-1)
    enclosing_w, enclosing_h = _enclosing_box(a, b)
    diagonal_sq = enclosing_w**2 + enclosing_h**2

    width_a, height_a = a[..., 2] - a[..., 0], a[..., 3] - a[..., 1]
    width_b, height_b = b[..., 2] - b[..., 0], b[..., 3] - b[..., 1]
    angle_gap = _aspect_angle(width_a, height_a) - _aspect_angle(width_b, height_b)
    aspect_term = (4 / jnp.pi**2) * angle_gap**2
    alpha = jax.lax.stop_gradient(_safe_divide(aspect_term, 1 - iou_value + aspect_term))
    return iou_value - _safe_divide(centre_distance_sq, diagonal_sq) - alpha * aspect_term


def _pairwise(elementwise_fn, a: jax.Array, b: jax.Array) -> jax.Array:
    a, b = jnp.asarray(a), jnp.asarray(b)
    _check_boxes("a", a)
    _check_boxes("b", b)
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(
            f"pairwise IoU needs a (..., N, 4) and b (..., M, 4), got {a.shape} and {b.shape}; "
            "use the elementwise_* functions for one-to-one pairs."
        )
    return elementwise_fn(a[..., :, None, :], b[..., None, :, :])


@jax.jit
def iou(a: jax.Array, b: jax.Array) -> jax.Array:
    """Pairwise IoU of ``xyxy`` boxes: (..., N, 4) x (..., M, 4) -> (..., N, M)."""
    return _pairwise(elementwise_iou, a, b)


@jax.jit
def giou(a: jax.Array, b: jax.Array) -> jax.Array:
    """Pairwise generalised IoU: (..., N, 4) x (..., M, 4) -> (..., N, M)."""
    return _pairwise(elementwise_giou, a, b)


@jax.jit
def ciou(a: jax.Array, b: jax.Array) -> jax.Array:
    """Pairwise complete IoU: (..., N, 4) x (..., M, 4) -> (..., N, M)."""
    return _pairwise(elementwise_ciou, a, b)


def _greedy_keep(suppresses: jax.Array, candidate: jax.Array) -> jax.Array:
    """Solves greedy NMS for boxes sorted by descending score.

    ``suppresses[j, i]`` says box ``j`` (higher score, ``j < i``) would suppress box ``i``.
    Greedy NMS keeps box ``i`` iff it is a candidate and no *kept* earlier box suppresses
    it. That definition is a fixed point ``keep = F(keep)`` whose solution is unique
    (entry ``i`` only depends on entries before it), and iterating ``F`` from
    ``keep = candidate`` fixes at least one more leading entry per step. Each step is one
    boolean mat-vec, so on accelerators this takes a few wide steps (the length of the
    longest suppression chain) instead of N sequential ones.
    """
    num_boxes = candidate.shape[0]

    def step(keep):
        suppressed = jnp.any(keep[:, None] & suppresses, axis=0)
        return candidate & ~suppressed

    def not_converged(state):
        previous, current, iteration = state
        return jnp.any(previous != current) & (iteration < num_boxes)

    def body(state):
        _, current, iteration = state
        return current, step(current), iteration + 1

    _, keep, _ = jax.lax.while_loop(not_converged, body, (candidate, step(candidate), 0))
    return keep


@functools.partial(jax.jit, static_argnames=("max_detections", "pre_nms_top_k"))
def nms(
    boxes: jax.Array,
    scores: jax.Array,
    classes: jax.Array | None = None,
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
    max_detections: int = 100,
    pre_nms_top_k: int | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Class-aware greedy non-maximum suppression with static output shapes.

    Args:
      boxes: (N, 4) ``xyxy`` boxes.
      scores: (N,) confidences.
      classes: (N,) integer class ids, or ``None`` for class-agnostic NMS. Entries with
        a negative class are padding and are never returned.
      iou_threshold: a box is suppressed by a kept, higher-scoring box of the same class
        whose IoU with it is strictly greater than this.
      score_threshold: only boxes with ``score > score_threshold`` take part (strict, as
        in TensorFlow's ``non_max_suppression``).
      max_detections: static number of outputs.
      pre_nms_top_k: if set, only the ``pre_nms_top_k`` highest-scoring boxes take part.
        NMS builds an (N, N) overlap matrix, so dense detectors with thousands of anchors
        should set this (e.g. 1000) to bound memory; ``None`` uses all N boxes.

    Returns:
      ``(boxes (max_detections, 4), scores (max_detections,), classes (max_detections,),
      valid_count ())``: kept boxes by descending score (ties keep input order), then
      padding with box 0, score 0 and class -1.
    """
    boxes, scores = jnp.asarray(boxes), jnp.asarray(scores)
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(
            f"boxes must be (N, 4) xyxy, got shape {boxes.shape}; use batched_nms "
            "for a leading batch axis."
        )
    num_boxes = boxes.shape[0]
    if scores.shape != (num_boxes,):
        raise ValueError(f"scores must be ({num_boxes},) to match boxes, got {scores.shape}.")
    if classes is None:
        classes = jnp.zeros((num_boxes,), jnp.int32)
    classes = jnp.asarray(classes)
    if classes.shape != (num_boxes,):
        raise ValueError(f"classes must be ({num_boxes},) to match boxes, got {classes.shape}.")
    if not jnp.issubdtype(classes.dtype, jnp.integer):
        raise ValueError(f"classes must be integer class ids, got dtype {classes.dtype}.")
    if max_detections < 1:
        raise ValueError(f"max_detections must be >= 1, got {max_detections}.")
    if pre_nms_top_k is not None and pre_nms_top_k < 1:
        raise ValueError(f"pre_nms_top_k must be >= 1 or None, got {pre_nms_top_k}.")
    if pre_nms_top_k is not None and pre_nms_top_k < num_boxes:
        # lax.top_k puts the lower index first among equal scores, like the stable sort below.
        _, top = jax.lax.top_k(scores, pre_nms_top_k)
        boxes, scores, classes = boxes[top], scores[top], classes[top]
        num_boxes = pre_nms_top_k

    # Stable sort so equal scores keep input order, as the NumPy / TF references do.
    order = jnp.argsort(-scores, stable=True)
    sorted_boxes, sorted_scores, sorted_classes = boxes[order], scores[order], classes[order]
    candidate = (sorted_scores > score_threshold) & (sorted_classes >= 0)

    overlaps = iou(sorted_boxes, sorted_boxes) > iou_threshold
    same_class = sorted_classes[:, None] == sorted_classes[None, :]
    earlier = jnp.arange(num_boxes)[:, None] < jnp.arange(num_boxes)[None, :]
    keep = _greedy_keep(overlaps & same_class & earlier, candidate)

    # Kept boxes, still in score order, move to the front; the rest follow.
    rank = jnp.where(keep, jnp.arange(num_boxes), num_boxes + jnp.arange(num_boxes))
    selected = jnp.argsort(rank)[:max_detections]
    valid = keep[selected]
    pad = max_detections - selected.shape[0]  # positive when N < max_detections
    out_boxes = jnp.where(valid[:, None], sorted_boxes[selected], 0)
    out_scores = jnp.where(valid, sorted_scores[selected], 0)
    out_classes = jnp.where(valid, sorted_classes[selected], -1)
    if pad > 0:
        out_boxes = jnp.pad(out_boxes, ((0, pad), (0, 0)))
        out_scores = jnp.pad(out_scores, (0, pad))
        out_classes = jnp.pad(out_classes, (0, pad), constant_values=-1)
    valid_count = jnp.minimum(jnp.sum(keep), max_detections).astype(jnp.int32)
    return out_boxes, out_scores, out_classes, valid_count


def batched_nms(
    boxes: jax.Array,
    scores: jax.Array,
    classes: jax.Array | None = None,
    *,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.5,
    max_detections: int = 100,
    pre_nms_top_k: int | None = None,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """``nms`` over a leading batch axis: boxes (B, N, 4), scores (B, N), classes (B, N).

    Returns ``(B, max_detections, 4)``, ``(B, max_detections)``, ``(B, max_detections)``
    and valid counts ``(B,)``.
    """
    boxes, scores = jnp.asarray(boxes), jnp.asarray(scores)
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be (B, N, 4) xyxy, got shape {boxes.shape}.")
    if classes is None:
        classes = jnp.zeros(scores.shape, jnp.int32)
    single = functools.partial(
        nms,
        iou_threshold=iou_threshold,
        score_threshold=score_threshold,
        max_detections=max_detections,
        pre_nms_top_k=pre_nms_top_k,
    )
    return jax.vmap(single)(boxes, scores, jnp.asarray(classes))
