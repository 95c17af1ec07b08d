"""YOLO v1 (Redmon et al., 2016), the course's grid detector: the model, its target encoding,
its multi-part squared-error loss and its decoding, registered as ``yolo_v1`` (and ``yolo``).

The image is an S x S grid. Per cell the head outputs B predictors ``(x, y, sqrt(w), sqrt(h),
C)`` -- x, y the box centre relative to the cell (0..1 across it), w, h relative to the image,
C the confidence -- then C class probabilities, all linear: ``{"grid": (N, S, S, B*5 + C)}``.

Two heads make that grid from a registered ResNet backbone (``backbone_width`` scales it):

* ``head="fc"`` (the paper): the stride-32 map, a fully connected layer, leaky ReLU, dropout
  and a linear layer to the S x S x (B*5 + C) grid; any ``grid_size``.
* ``head="conv"``: the backbone stage of stride ``image_size / grid_size`` (8, 16 or 32; the
  deeper stages are not built), ``head_convs`` 3x3 conv + BatchNorm + leaky ReLU layers and a
  1x1 conv giving each cell its B*5 + C outputs. Each cell then sees the same weights, so
  small data sets need far fewer examples to learn where boxes are.

Loss per image, summed over cells i and predictors j (the paper's equation 3):

    l_coord * sum 1obj_ij [(x - x^)^2 + (y - y^)^2]
  + l_coord * sum 1obj_ij [(sqrt w - sqrt w^)^2 + (sqrt h - sqrt h^)^2]
  +           sum 1obj_ij (C - C^)^2 + l_noobj * sum 1noobj_ij (C - C^)^2
  +           sum_i 1obj_i sum_c (p(c) - p^(c))^2

A ground-truth box belongs to the cell containing its centre; when several centres fall in
one cell the cell takes the first of them (the paper's cells predict one object, so the others
are lost: `cell_collisions` counts them). The responsible predictor is the one of that cell
whose current box has the highest IoU with the ground truth (the first on ties); its
confidence target is that IoU (C^ = P(object) x IoU), every other predictor's target is 0
(1noobj = not 1obj). The loss is summed over an image and averaged over the batch.

Decoding: every predictor is a candidate box with score ``C x max_c p(c)`` for its cell's
most probable class.
"""

from __future__ import annotations

from collections.abc import Collection

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vision_jax.models import layers, register
from vision_jax.ops import boxes as box_ops
from vision_jax.sections import one_of, option, positive

HEADS = ("fc", "conv")
# Options only one head reads (dropout_rate: only when positive, config.model always has it).
_HEAD_ONLY = {"fc": ("hidden_units", "dropout_rate"), "conv": ("head_width", "head_convs")}
# Backbone stage whose last map has each stride (ImageNet stem: stage k has stride 2**(k+1)).
_STAGE_OF_STRIDE = {8: 2, 16: 3, 32: 4}
# A typical object at initialisation: centre of its cell, a quarter of the image wide, so the
# responsible predictor overlaps its box from the first step.
_INITIAL_SQRT_SIZE = 0.5


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


def _cells(cxcywh: jax.Array, s: int) -> jax.Array:
    """Row-major cell index of each box centre (cxcywh in image units)."""
    col = jnp.clip(jnp.floor(cxcywh[..., 0] * s), 0, s - 1).astype(jnp.int32)
    row = jnp.clip(jnp.floor(cxcywh[..., 1] * s), 0, s - 1).astype(jnp.int32)
    return row * s + col


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
    valid = gt_classes >= 0
    member = jax.nn.one_hot(_cells(cxcywh, s), s * s, dtype=jnp.bool_) & valid[..., None]
    has_object = jnp.any(member, axis=1)  # (N, S*S)
    first = jnp.argmax(member, axis=1)  # the first ground truth in each cell
    take = jax.vmap(lambda values, index: values[index])
    return {"has_object": has_object, "box": take(cxcywh, first),
            "cls": take(gt_classes, first).astype(jnp.int32)}


def cell_collisions(gt_boxes: np.ndarray, gt_classes: np.ndarray, grid_size: int,
                    image_size: int) -> int:
    """Ground-truth boxes no cell can learn: those whose centre shares a cell with an earlier
    box of the same image (an upper bound on recall is ``1 - collisions / boxes``)."""
    cxcywh = np.asarray(box_ops.convert(jnp.asarray(gt_boxes, jnp.float32), "xyxy", "cxcywh"))
    cells = np.asarray(_cells(jnp.asarray(cxcywh / image_size), grid_size))
    lost = 0
    for image_cells, image_classes in zip(cells, np.asarray(gt_classes), strict=True):
        kept = image_cells[image_classes >= 0]
        lost += len(kept) - len(np.unique(kept))
    return lost


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


def _grid_bias(boxes_per_cell: int):
    """Output bias: each predictor starts at its cell's centre with a typical size."""
    def init(key, shape, dtype=jnp.float32):
        del key
        bias = np.zeros(shape, np.float32)
        for b in range(boxes_per_cell):
            bias[5 * b:5 * b + 4] = [0.5, 0.5, _INITIAL_SQRT_SIZE, _INITIAL_SQRT_SIZE]
        return jnp.asarray(bias, dtype)
    return init


def _tiled(init, repeats: int):
    """A bias initialiser repeating ``init``'s vector ``repeats`` times (one per cell)."""
    def tiled(key, shape, dtype=jnp.float32):
        return jnp.tile(init(key, (shape[0] // repeats,), dtype), repeats)
    return tiled


class YoloV1(nn.Module):
    """YOLO v1 on a ResNet backbone (see the module docstring)."""

    num_classes: int
    backbone: str = option("resnet18", "registered ResNet backbone (resnet18 ... resnet152)")
    backbone_width: int = option(64, "channels of the backbone's first stage (64 = paper)",
                                 check=positive)
    grid_size: int = option(7, "S: the image is an S x S grid of cells", check=positive)
    boxes_per_cell: int = option(2, "B: box predictors per cell", check=positive)
    head: str = option("fc", "fc (the paper's fully connected head) or conv (a conv head on "
                       "the backbone stage of stride image_size / grid_size)",
                       check=one_of(*HEADS))
    hidden_units: int = option(512, "fc head: width of the hidden layer (4096 in the paper)",
                               check=positive)
    head_width: int = option(128, "conv head: channels of its 3x3 convs", check=positive)
    head_convs: int = option(2, "conv head: number of 3x3 conv layers", check=positive)
    dropout_rate: float = option(0.5, "fc head: dropout after the hidden layer")
    lambda_coord: float = option(5.0, "loss weight of the box coordinates (paper: 5)")
    lambda_noobj: float = option(0.5, "loss weight of empty predictors' confidence (paper: .5)")
    conv_impl: str = option("auto", "convolution kernel (vision_jax.ops)")
    pool_impl: str = option("auto", "pooling kernel (vision_jax.ops)")
    dtype: layers.Dtype = jnp.float32
    param_dtype: layers.Dtype = jnp.float32

    # -- the Detector interface (vision_jax.models.detector) ---------------------------------

    def check(self, image_size: int, configured: Collection[str] = ()) -> str | None:
        if self.head == "conv" and (image_size % self.grid_size
                                    or image_size // self.grid_size not in _STAGE_OF_STRIDE):
            sizes = ", ".join(f"{image_size // s}" for s in _STAGE_OF_STRIDE
                              if image_size % s == 0)
            return (f"config.model.grid_size={self.grid_size} with head='conv' needs "
                    f"image_size / grid_size in {tuple(_STAGE_OF_STRIDE)}; for image_size "
                    f"{image_size} use grid_size in ({sizes})")
        unused = _HEAD_ONLY[next(h for h in HEADS if h != self.head)]
        for field in unused:
            if field in configured and (field != "dropout_rate" or self.dropout_rate > 0):
                return (f"config.model.{field} is unused with config.model.head="
                        f"{self.head!r}; remove it")
        return None

    def encode(self, gt_boxes: jax.Array, gt_classes: jax.Array,
               image_size: int) -> dict[str, jax.Array]:
        return cell_targets(gt_boxes, gt_classes, self.grid_size, image_size)

    def loss(self, outputs: dict, gt_boxes: jax.Array, gt_classes: jax.Array,
             image_size: int) -> tuple[jax.Array, dict[str, jax.Array]]:
        return v1_loss(outputs["grid"], gt_boxes, gt_classes, image_size=image_size,
                       boxes_per_cell=self.boxes_per_cell, lambda_coord=self.lambda_coord,
                       lambda_noobj=self.lambda_noobj)

    def decode(self, outputs: dict,
               image_size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
        return v1_decode(outputs["grid"], image_size=image_size,
                         boxes_per_cell=self.boxes_per_cell)

    # -- the network --------------------------------------------------------------------------

    def _backbone(self, stages: int | None) -> nn.Module:
        from vision_jax import models

        if not self.backbone.startswith("resnet"):
            raise ValueError(
                f"yolo_v1: backbone={self.backbone!r} is not supported; use a ResNet "
                "(config.model.backbone='resnet18', 'resnet34', 'resnet50', ...)")
        kwargs = {"num_classes": 1, "dtype": self.dtype, "param_dtype": self.param_dtype,
                  "conv_impl": self.conv_impl, "pool_impl": self.pool_impl,
                  "width": self.backbone_width, "return_features": True}
        if stages is not None:  # the deeper stages would be computed for nothing
            full = models.create(self.backbone, parent=None, **kwargs).stage_sizes
            kwargs["stage_sizes"] = tuple(full[:stages])
        return models.create(self.backbone, **kwargs)

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        problem = self.check(images.shape[1])
        if problem:
            raise ValueError(f"yolo_v1: {problem}")
        s, b, c = self.grid_size, self.boxes_per_cell, self.num_classes
        depth = b * 5 + c
        if self.head == "fc":
            x = self._backbone(None)(images, train=train)["stage4"]
            x = x.reshape(x.shape[0], -1)
            x = nn.Dense(self.hidden_units, dtype=self.dtype, param_dtype=self.param_dtype,
                         name="fc1")(x)
            x = nn.leaky_relu(x, 0.1)
            x = nn.Dropout(self.dropout_rate, deterministic=not train, name="dropout")(x)
            x = nn.Dense(s * s * depth, dtype=self.dtype, param_dtype=self.param_dtype,
                         kernel_init=nn.initializers.normal(0.01),
                         bias_init=_tiled(_grid_bias(b), s * s), name="fc2")(x)
            return {"grid": x.astype(jnp.float32).reshape(x.shape[0], s, s, depth)}
        stage = _STAGE_OF_STRIDE[images.shape[1] // s]
        x = self._backbone(stage)(images, train=train)[f"stage{stage}"]
        for i in range(self.head_convs):
            x = layers.Conv(self.head_width, (3, 3), use_bias=False, dtype=self.dtype,
                            param_dtype=self.param_dtype, impl=self.conv_impl,
                            name=f"head_conv{i}")(x)
            x = nn.leaky_relu(layers.batch_norm(train, self.dtype, self.param_dtype,
                                                name=f"head_bn{i}")(x), 0.1)
        x = layers.Conv(depth, (1, 1), dtype=self.dtype, param_dtype=self.param_dtype,
                        impl=self.conv_impl, kernel_init=nn.initializers.normal(0.01),
                        bias_init=_grid_bias(b), name="grid_out")(x)
        return {"grid": x.astype(jnp.float32)}


register("yolo_v1", YoloV1)
register("yolo", YoloV1)  # the course's YOLO (DESIGN.md's public name)
