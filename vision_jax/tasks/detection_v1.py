"""YOLO v1 (Redmon et al., 2016): the multi-part squared-error loss and decoding.

Grid layout (see `vision_jax.models.yolo`): per cell, B predictors ``(x, y, sqrt(w),
sqrt(h), C)`` then C class probabilities, all linear outputs. x, y are the box centre
relative to the cell (0..1 across the cell), w, h are relative to the image.

Loss per image, summed over cells i and predictors j (the paper's equation 3):

    l_coord * sum 1obj_ij [(x - x^)^2 + (y - y^)^2]
  + l_coord * sum 1obj_ij [(sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
  +           sum 1obj_ij (C - C^)^2 + l_noobj * sum 1noobj_ij (C - C^)^2
  +           sum_i 1obj_i sum_c (p(c) - p^(c))^2

A ground-truth box belongs to the cell containing its centre; when several centres fall
in one cell the cell takes the first of them (the paper's cells predict one object).
The responsible predictor is the one of that cell whose current box has the highest IoU
with the ground truth (the first on ties); its confidence target is that IoU (C^ =
P(object) x IoU), every other predictor's target is 0 (1noobj = not 1obj). The loss is
summed over an image and averaged over the batch.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vision_jax.ops import boxes as box_ops


def _split(grid: jax.Array, boxes_per_cell: int) -> tuple[jax.Array, jax.Array]:
    """(N, S, S, B*5 + C) -> boxes (N, S*S, B, 5) and class probabilities (N, S*S, C)."""
    n, s = grid.shape[0], grid.shape[1]
    flat = grid.reshape(n, s * s, -1)
    return (flat[..., :boxes_per_cell * 5].reshape(n, s * s, boxes_per_cell, 5),
            flat[..., boxes_per_cell * 5:])


def _cell_offsets(s: int) -> tuple[jax.Array, jax.Array]:
    """(S*S,) column and row of each cell, row-major."""
    rows, cols = jnp.meshgrid(jnp.arange(s), jnp.arange(s), indexing="ij")
    return cols.reshape(-1).astype(jnp.float32), rows.reshape(-1).astype(jnp.float32)


def predicted_boxes(grid: jax.Array, boxes_per_cell: int) -> jax.Array:
    """(N, S*S, B, 4) predicted boxes, xyxy in units of the image (0..1)."""
    pred, _ = _split(grid, boxes_per_cell)
    s = grid.shape[1]
    cols, rows = _cell_offsets(s)
    cx = (cols[None, :, None] + pred[..., 0]) / s
    cy = (rows[None, :, None] + pred[..., 1]) / s
    w, h = jnp.square(pred[..., 2]), jnp.square(pred[..., 3])
    return jnp.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def cell_targets(gt_boxes: jax.Array, gt_classes: jax.Array, grid_size: int,
                 image_size: int) -> dict[str, jax.Array]:
    """Which cell holds an object and its box, per image.

    Args:
      gt_boxes: (N, G, 4) xyxy pixels; gt_classes: (N, G), negative = padding.
    Returns ``has_object`` (N, S*S) bool, ``box`` (N, S*S, 4) cxcywh in image units, and
    ``cls`` (N, S*S) int32 (meaningful where has_object).
    """
    s = grid_size
    cxcywh = box_ops.convert(gt_boxes.astype(jnp.float32), "xyxy", "cxcywh") / image_size
    col = jnp.clip(jnp.floor(cxcywh[..., 0] * s), 0, s - 1).astype(jnp.int32)
    row = jnp.clip(jnp.floor(cxcywh[..., 1] * s), 0, s - 1).astype(jnp.int32)
    valid = gt_classes >= 0
    member = (jax.nn.one_hot(row * s + col, s * s, dtype=jnp.bool_) & valid[..., None])  # N,G,SS
    has_object = jnp.any(member, axis=1)
    first = jnp.argmax(member, axis=1)  # the first ground truth in each cell
    take = jax.vmap(lambda values, index: values[index])
    return {"has_object": has_object, "box": take(cxcywh, first),
            "cls": take(gt_classes, first).astype(jnp.int32)}


def v1_loss(grid: jax.Array, gt_boxes: jax.Array, gt_classes: jax.Array, *, image_size: int,
            boxes_per_cell: int, lambda_coord: float = 5.0,
            lambda_noobj: float = 0.5) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The YOLO v1 loss (module docstring): batch mean, and per-part sums over the batch."""
    grid = grid.astype(jnp.float32)
    s, num_classes = grid.shape[1], grid.shape[-1] - boxes_per_cell * 5
    pred, probs = _split(grid, boxes_per_cell)
    target = cell_targets(gt_boxes, gt_classes, s, image_size)
    obj_cell = target["has_object"].astype(jnp.float32)  # (N, SS)

    gt_xyxy = box_ops.convert(target["box"], "cxcywh", "xyxy")  # (N, SS, 4)
    ious = jax.lax.stop_gradient(box_ops.elementwise_iou(
        predicted_boxes(grid, boxes_per_cell), gt_xyxy[:, :, None, :]))  # (N, SS, B)
    responsible = jax.nn.one_hot(jnp.argmax(ious, axis=-1), boxes_per_cell)
    obj = responsible * obj_cell[..., None]  # 1obj_ij
    noobj = 1.0 - obj

    cols, rows = _cell_offsets(s)
    x_target = target["box"][..., 0] * s - cols  # centre relative to its cell
    y_target = target["box"][..., 1] * s - rows
    sqrt_w = jnp.sqrt(jnp.maximum(target["box"][..., 2], 0.0))
    sqrt_h = jnp.sqrt(jnp.maximum(target["box"][..., 3], 0.0))
    centre = (jnp.square(pred[..., 0] - x_target[..., None])
              + jnp.square(pred[..., 1] - y_target[..., None]))
    size = (jnp.square(pred[..., 2] - sqrt_w[..., None])
            + jnp.square(pred[..., 3] - sqrt_h[..., None]))
    parts = {
        "coord_loss": lambda_coord * jnp.sum(obj * (centre + size), axis=(1, 2)),
        "obj_loss": jnp.sum(obj * jnp.square(pred[..., 4] - ious), axis=(1, 2)),
        "noobj_loss": lambda_noobj * jnp.sum(noobj * jnp.square(pred[..., 4]), axis=(1, 2)),
        "class_loss": jnp.sum(obj_cell[..., None] * jnp.square(
            probs - jax.nn.one_hot(target["cls"], num_classes)), axis=(1, 2)),
    }
    per_image = sum(parts.values())
    sums = {k: jnp.sum(v) for k, v in parts.items()}
    return jnp.mean(per_image), {"loss": jnp.sum(per_image), **sums}


def v1_decode(grid: jax.Array, *, image_size: int,
              boxes_per_cell: int) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Candidate boxes (N, S*S*B, 4) xyxy pixels (clipped to the image), class-specific
    scores ``C x max_c p(c)`` (N, S*S*B) and classes (N, S*S*B)."""
    grid = grid.astype(jnp.float32)
    n = grid.shape[0]
    pred, probs = _split(grid, boxes_per_cell)
    xyxy = jnp.clip(predicted_boxes(grid, boxes_per_cell) * image_size, 0.0, image_size)
    classes = jnp.broadcast_to(jnp.argmax(probs, -1)[..., None], pred.shape[:-1])
    scores = pred[..., 4] * jnp.max(probs, -1)[..., None]
    return (xyxy.reshape(n, -1, 4), scores.reshape(n, -1),
            classes.reshape(n, -1).astype(jnp.int32))
