"""The anchor-free fpn head (FCOS-style): target assignment, loss and decoding.

Assignment, per location p (pixel centre, stride s) and ground-truth box g:
  * p lies inside g (all of left, top, right, bottom distances > 0);
  * centre sampling: p lies within ``center_radius * s`` of g's centre (the region
    clipped to g), so only central locations of an object learn it;
  * scale: the largest of p's four distances to g's sides lies in the level's range
    (``scale_ranges``), so each object is learned at one pyramid level;
  * among several matching boxes the smallest (by area) wins.

Loss (each normalised by the number of positive locations in the batch):
  * sigmoid focal loss over every location and class;
  * GIoU (or CIoU) loss ``1 - giou`` on positives, weighted by the centerness target;
  * binary cross-entropy of the centerness logit against
    ``sqrt(min(l, r) / max(l, r) * min(t, b) / max(t, b))`` on positives.

Decoding: score of (location, class) = ``sqrt(sigmoid(cls) * sigmoid(ctr))``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vision_jax.ops import boxes as box_ops

DEFAULT_SCALE_RANGES = ((0.0, 64.0), (64.0, 128.0), (128.0, 1e8))


def point_scale_ranges(points: np.ndarray, strides: tuple[int, ...],
                       scale_ranges) -> np.ndarray:
    """(P, 2) (low, high) regression range of each location, from its level's stride."""
    table = {s: r for s, r in zip(strides, scale_ranges, strict=True)}
    return np.asarray([table[int(s)] for s in points[:, 2]], np.float32)


def distances(points: jax.Array, boxes: jax.Array) -> jax.Array:
    """(P, 2+) points x (..., G, 4) xyxy boxes -> (..., P, G, 4) left, top, right, bottom."""
    x, y = points[:, 0, None], points[:, 1, None]
    x0, y0, x1, y1 = (boxes[..., None, :, k] for k in range(4))
    return jnp.stack([x - x0, y - y0, x1 - x, y1 - y], axis=-1)


def centerness(ltrb: jax.Array) -> jax.Array:
    """FCOS centerness of distances (..., 4); 0 where a distance is not positive."""
    ltrb = jnp.maximum(ltrb, 0.0)
    lr = jnp.minimum(ltrb[..., 0], ltrb[..., 2]) / jnp.maximum(
        jnp.maximum(ltrb[..., 0], ltrb[..., 2]), 1e-9)
    tb = jnp.minimum(ltrb[..., 1], ltrb[..., 3]) / jnp.maximum(
        jnp.maximum(ltrb[..., 1], ltrb[..., 3]), 1e-9)
    return jnp.sqrt(lr * tb)


def assign(points: jax.Array, ranges: jax.Array, gt_boxes: jax.Array, gt_classes: jax.Array, *,
           center_radius: float = 1.5) -> dict[str, jax.Array]:
    """Targets of one image (see the module docstring).

    Args:
      points: (P, 3) ``(x, y, stride)``; ranges: (P, 2) scale range per location.
      gt_boxes: (G, 4) xyxy pixels; gt_classes: (G,) ints, negative = padding.
    Returns ``positive`` (P,) bool, ``index`` (P,) assigned box, ``cls`` (P,) int32 class
    (-1 on negatives), ``box`` (P, 4) xyxy target, ``centerness`` (P,) target.
    """
    gt_boxes = gt_boxes.astype(jnp.float32)
    ltrb = distances(points, gt_boxes)  # (P, G, 4)
    inside_box = jnp.min(ltrb, axis=-1) > 0
    centre = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2  # (G, 2)
    radius = center_radius * points[:, 2, None, None]  # (P, 1, 1)
    region = jnp.concatenate([jnp.maximum(centre - radius, gt_boxes[:, :2]),
                              jnp.minimum(centre + radius, gt_boxes[:, 2:])], axis=-1)
    inside_centre = jnp.all(jnp.stack([
        points[:, 0, None] > region[..., 0], points[:, 1, None] > region[..., 1],
        points[:, 0, None] < region[..., 2], points[:, 1, None] < region[..., 3]]), axis=0)
    reach = jnp.max(ltrb, axis=-1)
    in_range = (reach >= ranges[:, 0, None]) & (reach <= ranges[:, 1, None])
    candidate = inside_box & inside_centre & in_range & (gt_classes >= 0)[None, :]
    areas = box_ops.area(gt_boxes)
    index = jnp.argmin(jnp.where(candidate, areas[None, :], jnp.inf), axis=-1)
    positive = jnp.any(candidate, axis=-1)
    box = gt_boxes[index]
    own = jnp.take_along_axis(ltrb, index[:, None, None], axis=1)[:, 0]  # (P, 4)
    return {
        "positive": positive,
        "index": index,
        "cls": jnp.where(positive, gt_classes[index], -1).astype(jnp.int32),
        "box": box,
        "centerness": jnp.where(positive, centerness(own), 0.0),
    }


def decode_boxes(points: jax.Array, ltrb: jax.Array) -> jax.Array:
    """(P, 3) points and (..., P, 4) distances -> (..., P, 4) xyxy."""
    x, y = points[:, 0], points[:, 1]
    return jnp.stack([x - ltrb[..., 0], y - ltrb[..., 1], x + ltrb[..., 2], y + ltrb[..., 3]],
                     axis=-1)


def fpn_loss(outputs: dict, gt_boxes: jax.Array, gt_classes: jax.Array, *, points: np.ndarray,
             ranges: np.ndarray, center_radius: float = 1.5, focal_alpha: float = 0.25,
             focal_gamma: float = 2.0,
             box_loss: str = "giou") -> tuple[jax.Array, dict[str, jax.Array]]:
    """The fpn loss (module docstring): scalar, and per-part sums scaled by the batch size
    (so the mean over batches of ``sum / count`` is the mean loss)."""
    points, ranges = jnp.asarray(points), jnp.asarray(ranges)
    targets = jax.vmap(lambda b, c: assign(points, ranges, b, c, center_radius=center_radius))(
        gt_boxes, gt_classes)
    cls_logits = outputs["cls"].astype(jnp.float32)
    num_classes = cls_logits.shape[-1]
    positive = targets["positive"].astype(jnp.float32)  # (N, P)
    num_positive = jnp.maximum(jnp.sum(positive), 1.0)

    onehot = jax.nn.one_hot(targets["cls"], num_classes)  # -1 -> all zeros
    focal = optax.sigmoid_focal_loss(cls_logits, onehot, alpha=focal_alpha, gamma=focal_gamma)
    cls_loss = jnp.sum(focal) / num_positive

    pred_boxes = decode_boxes(points, outputs["box"].astype(jnp.float32))
    overlap_fn = box_ops.elementwise_ciou if box_loss == "ciou" else box_ops.elementwise_giou
    overlap = overlap_fn(pred_boxes, targets["box"])
    weight = targets["centerness"] * positive
    box_term = jnp.sum((1.0 - overlap) * weight) / jnp.maximum(jnp.sum(weight), 1e-6)

    ctr_bce = optax.sigmoid_binary_cross_entropy(outputs["ctr"].astype(jnp.float32),
                                                 targets["centerness"])
    ctr_loss = jnp.sum(ctr_bce * positive) / num_positive

    loss = cls_loss + box_term + ctr_loss
    n = jnp.asarray(gt_boxes.shape[0], jnp.float32)
    return loss, {"loss": loss * n, "cls_loss": cls_loss * n, "box_loss": box_term * n,
                  "ctr_loss": ctr_loss * n, "positives": jnp.sum(positive)}


def fpn_decode(outputs: dict, *, points: np.ndarray,
               image_size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Every (location, class) pair as a candidate: boxes (N, P*C, 4) xyxy pixels clipped
    to the image, scores (N, P*C), classes (N, P*C)."""
    points = jnp.asarray(points)
    cls = jax.nn.sigmoid(outputs["cls"].astype(jnp.float32))
    ctr = jax.nn.sigmoid(outputs["ctr"].astype(jnp.float32))
    n, p, c = cls.shape
    scores = jnp.sqrt(cls * ctr[..., None])
    boxes = jnp.clip(decode_boxes(points, outputs["box"].astype(jnp.float32)), 0.0, image_size)
    boxes = jnp.broadcast_to(boxes[:, :, None, :], (n, p, c, 4))
    classes = jnp.broadcast_to(jnp.arange(c, dtype=jnp.int32), (n, p, c))
    return boxes.reshape(n, p * c, 4), scores.reshape(n, p * c), classes.reshape(n, p * c)
