"""An FCOS-style anchor-free detector (Tian et al., 2019) on a ResNet backbone: the model, its
target assignment, loss and decoding, registered as ``fcos``.

Network: a feature pyramid over the backbone stages at strides 8, 16, 32, a shared head of
GroupNorm convs per level, and per location ``cls`` logits (C), ``box`` distances (left, top,
right, bottom) in input pixels, and a ``ctr`` (centerness) logit. Output ``{"cls": (N, P, C),
"box": (N, P, 4), "ctr": (N, P)}``, locations ordered level by level (stride 8 first),
row-major within a level; see `fpn_points` for their pixel centres.

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

import math
from collections.abc import Collection

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vision_jax.models import layers, register
from vision_jax.ops import boxes as box_ops
from vision_jax.sections import one_of, option, positive

FPN_STRIDES = (8, 16, 32)
DEFAULT_SCALE_RANGES = ((0.0, 64.0), (64.0, 128.0), (128.0, 1e8))
# Backbone stage whose last map has each stride (ImageNet stem: stage k has stride 2**(k+1)).
_STAGE_OF_STRIDE = {8: "stage2", 16: "stage3", 32: "stage4"}
_CLS_PRIOR = 0.01  # initial foreground probability of the classifier (RetinaNet/FCOS)
_head_init = nn.initializers.normal(0.01)


def fpn_points(image_size: int, strides: tuple[int, ...] = FPN_STRIDES) -> np.ndarray:
    """(P, 3) ``(x, y, stride)`` of every head location, in the head's output order.

    Location (i, j) of a level with stride s sits at pixel ``((j + 0.5) s, (i + 0.5) s)``.
    """
    points = []
    for stride in strides:
        cells = math.ceil(image_size / stride)
        centres = (np.arange(cells, dtype=np.float32) + 0.5) * stride
        y, x = np.meshgrid(centres, centres, indexing="ij")
        points.append(np.stack([x.ravel(), y.ravel(), np.full(x.size, stride, np.float32)], -1))
    return np.concatenate(points).astype(np.float32)


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


def fcos_loss(outputs: dict, gt_boxes: jax.Array, gt_classes: jax.Array, *, points: np.ndarray,
              ranges: np.ndarray, center_radius: float = 1.5, focal_alpha: float = 0.25,
              focal_gamma: float = 2.0,
              box_loss: str = "giou") -> tuple[jax.Array, dict[str, jax.Array]]:
    """The loss (module docstring): scalar, and per-part sums scaled by the batch size
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


def fcos_decode(outputs: dict, *, points: np.ndarray,
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


def _scale_ranges(value) -> str | None:
    if len(value) != len(FPN_STRIDES) or any(len(r) != 2 for r in value):
        return f"needs one (low, high) per fpn stride {FPN_STRIDES}"
    return None


def _no_dropout(value) -> str | None:
    return None if value == 0 else "must be 0: fcos has no dropout layer"


class Fcos(nn.Module):
    """FCOS-style anchor-free detector on a ResNet backbone (see the module docstring)."""

    num_classes: int
    backbone: str = option("resnet18", "registered ResNet backbone (resnet18 ... resnet152)")
    backbone_width: int = option(64, "channels of the backbone's first stage (64 = paper)",
                                 check=positive)
    fpn_width: int = option(128, "channels of the pyramid and the head", check=positive)
    head_convs: int = option(2, "3x3 GroupNorm convs in the shared head", check=positive)
    center_radius: float = option(1.5, "centre sampling radius, in strides", check=positive)
    focal_alpha: float = option(0.25, "focal loss alpha")
    focal_gamma: float = option(2.0, "focal loss gamma")
    box_loss: str = option("giou", "box regression loss: giou or ciou",
                           check=one_of("giou", "ciou"))
    scale_ranges: tuple[tuple[float, float], ...] = option(
        DEFAULT_SCALE_RANGES, "(low, high) object reach in pixels learned at each of the "
        "strides 8, 16, 32", check=_scale_ranges)
    dropout_rate: float = option(0.0, "unused (no dropout layer); must stay 0",
                                 check=_no_dropout)
    conv_impl: str = option("auto", "convolution kernel (vision_jax.ops)")
    pool_impl: str = option("auto", "pooling kernel (vision_jax.ops)")
    dtype: layers.Dtype = jnp.float32
    param_dtype: layers.Dtype = jnp.float32

    # -- the Detector interface (vision_jax.models.detector) ---------------------------------

    def check(self, image_size: int, configured: Collection[str] = ()) -> str | None:
        del configured  # every option is used
        if image_size % max(FPN_STRIDES):
            return (f"config.image_size={image_size} must be a multiple of {max(FPN_STRIDES)} "
                    f"for fcos, e.g. {max(image_size // 32, 1) * 32}")
        return None

    def _geometry(self, image_size: int) -> tuple[np.ndarray, np.ndarray]:
        points = fpn_points(image_size, FPN_STRIDES)
        return points, point_scale_ranges(points, FPN_STRIDES, self.scale_ranges)

    def encode(self, gt_boxes: jax.Array, gt_classes: jax.Array,
               image_size: int) -> dict[str, jax.Array]:
        points, ranges = (jnp.asarray(a) for a in self._geometry(image_size))
        return jax.vmap(lambda b, c: assign(points, ranges, b, c,
                                            center_radius=self.center_radius))(
            gt_boxes, gt_classes)

    def loss(self, outputs: dict, gt_boxes: jax.Array, gt_classes: jax.Array,
             image_size: int) -> tuple[jax.Array, dict[str, jax.Array]]:
        points, ranges = self._geometry(image_size)
        return fcos_loss(outputs, gt_boxes, gt_classes, points=points, ranges=ranges,
                         center_radius=self.center_radius, focal_alpha=self.focal_alpha,
                         focal_gamma=self.focal_gamma, box_loss=self.box_loss)

    def decode(self, outputs: dict,
               image_size: int) -> tuple[jax.Array, jax.Array, jax.Array]:
        return fcos_decode(outputs, points=fpn_points(image_size, FPN_STRIDES),
                           image_size=image_size)

    # -- the network --------------------------------------------------------------------------

    def _backbone(self) -> nn.Module:
        from vision_jax import models

        if not self.backbone.startswith("resnet"):
            raise ValueError(
                f"fcos: backbone={self.backbone!r} is not supported; use a ResNet "
                "(config.model.backbone='resnet18', 'resnet34', 'resnet50', ...)")
        return models.create(self.backbone, num_classes=1, dtype=self.dtype,
                             param_dtype=self.param_dtype, conv_impl=self.conv_impl,
                             pool_impl=self.pool_impl, width=self.backbone_width,
                             return_features=True)

    def _conv(self, features: int, kernel: int, name: str, **kwargs) -> layers.Conv:
        return layers.Conv(features, (kernel, kernel), dtype=self.dtype,
                           param_dtype=self.param_dtype, impl=self.conv_impl, name=name, **kwargs)

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        problem = self.check(images.shape[1])
        if problem:
            raise ValueError(f"fcos: {problem}")
        features = self._backbone()(images, train=train)
        # Top-down pathway: lateral 1x1 convs, nearest upsampling, 3x3 smoothing.
        levels = [features[_STAGE_OF_STRIDE[s]] for s in FPN_STRIDES]
        laterals = [self._conv(self.fpn_width, 1, f"lateral{s}")(x)
                    for s, x in zip(FPN_STRIDES, levels, strict=True)]
        merged = [laterals[-1]]
        for lateral in reversed(laterals[:-1]):
            coarse = merged[0]
            up = jnp.repeat(jnp.repeat(coarse, 2, axis=1), 2, axis=2)
            merged.insert(0, lateral + up[:, :lateral.shape[1], :lateral.shape[2]])
        pyramid = [self._conv(self.fpn_width, 3, f"smooth{s}")(x)
                   for s, x in zip(FPN_STRIDES, merged, strict=True)]

        # One head shared by every level (FCOS); its modules are created once, reused below.
        tower = [(self._conv(self.fpn_width, 3, f"head_conv{i}", kernel_init=_head_init),
                  nn.GroupNorm(num_groups=min(8, self.fpn_width), dtype=self.dtype,
                               param_dtype=self.param_dtype, name=f"head_gn{i}"))
                 for i in range(self.head_convs)]
        prior_bias = -math.log((1 - _CLS_PRIOR) / _CLS_PRIOR)
        cls_out = self._conv(self.num_classes, 3, "cls_out", kernel_init=_head_init,
                             bias_init=nn.initializers.constant(prior_bias))
        box_out = self._conv(4, 3, "box_out", kernel_init=_head_init)
        ctr_out = self._conv(1, 3, "ctr_out", kernel_init=_head_init)
        outputs = {"cls": [], "box": [], "ctr": []}
        for stride, x in zip(FPN_STRIDES, pyramid, strict=True):
            for conv, norm in tower:
                x = nn.relu(norm(conv(x)))
            n = x.shape[0]
            outputs["cls"].append(cls_out(x).reshape(n, -1, self.num_classes))
            # Distances in pixels: positive, and in units of the level's stride so every
            # level regresses numbers of the same size.
            box = jax.nn.softplus(box_out(x).astype(jnp.float32)) * stride
            outputs["box"].append(box.reshape(n, -1, 4))
            outputs["ctr"].append(ctr_out(x).reshape(n, -1))
        return {k: jnp.concatenate(v, axis=1).astype(jnp.float32) for k, v in outputs.items()}


register("fcos", Fcos)
