"""YOLO detectors on a ResNet backbone, returning raw head outputs (the detection task decodes).

Two variants, chosen by ``variant``:

* ``"v1"`` (Redmon et al., 2016): the backbone's last map (stride 32), a fully connected
  layer, dropout, and a linear layer to an S x S x (B * 5 + C) grid. Per cell: B boxes
  ``(x, y, sqrt(w), sqrt(h), confidence)`` -- x, y relative to the cell, w, h relative to the
  image -- then C class probabilities. Output ``{"grid": (N, S, S, B * 5 + C)}``, linear.
* ``"fpn"``: an anchor-free multi-scale head (FCOS-style): a feature pyramid over the backbone
  stages at strides 8, 16, 32, a shared head of GroupNorm convs per level, and per location
  ``cls`` logits (C), ``box`` distances (left, top, right, bottom) in input pixels, and a
  ``ctr`` (centerness) logit. Output ``{"cls": (N, P, C), "box": (N, P, 4), "ctr": (N, P)}``,
  locations ordered level by level (stride 8 first), row-major within a level; see
  `fpn_points` for their pixel centres.

The backbone is a registered ResNet (``resnet18`` ... ``resnet152``) with the ImageNet stem,
built with ``return_features=True``; ``backbone_width`` scales it (64 = the paper's widths).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vision_jax.models import layers, register

VARIANTS = ("v1", "fpn")
FPN_STRIDES = (8, 16, 32)
# Backbone stage whose last map has each stride (ImageNet stem: stage k has stride 2**(k+1)).
_STAGE_OF_STRIDE = {8: "stage2", 16: "stage3", 32: "stage4"}
_CLS_PRIOR = 0.01  # initial foreground probability of the fpn classifier (RetinaNet/FCOS)


def fpn_points(image_size: int, strides: tuple[int, ...] = FPN_STRIDES) -> np.ndarray:
    """(P, 3) ``(x, y, stride)`` of every fpn head location, in the head's output order.

    Location (i, j) of a level with stride s sits at pixel ``((j + 0.5) s, (i + 0.5) s)``.
    """
    points = []
    for stride in strides:
        cells = math.ceil(image_size / stride)
        centres = (np.arange(cells, dtype=np.float32) + 0.5) * stride
        y, x = np.meshgrid(centres, centres, indexing="ij")
        points.append(np.stack([x.ravel(), y.ravel(), np.full(x.size, stride, np.float32)], -1))
    return np.concatenate(points).astype(np.float32)


class Yolo(nn.Module):
    """YOLO v1 or an FCOS-style fpn head on a ResNet backbone (see the module docstring)."""

    num_classes: int
    variant: str = "fpn"
    backbone: str = "resnet18"
    backbone_width: int = 64
    # v1
    grid_size: int = 7
    boxes_per_cell: int = 2
    hidden_units: int = 512  # 4096 in the paper (448 px inputs)
    dropout_rate: float = 0.5
    # fpn
    fpn_width: int = 128
    head_convs: int = 2
    dtype: layers.Dtype = jnp.float32
    param_dtype: layers.Dtype = jnp.float32
    conv_impl: str = "auto"
    pool_impl: str = "auto"

    def _backbone(self) -> nn.Module:
        from vision_jax import models

        if not self.backbone.startswith("resnet"):
            raise ValueError(
                f"yolo: backbone={self.backbone!r} is not supported; use a ResNet "
                "(config.model.backbone='resnet18', 'resnet34', 'resnet50', ...)")
        return models.create(self.backbone, num_classes=1, dtype=self.dtype,
                             param_dtype=self.param_dtype, conv_impl=self.conv_impl,
                             pool_impl=self.pool_impl, width=self.backbone_width,
                             return_features=True)

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool = False) -> dict[str, jax.Array]:
        if self.variant not in VARIANTS:
            raise ValueError(f"yolo: variant={self.variant!r} is unknown; use one of {VARIANTS}")
        features = self._backbone()(images, train=train)
        if self.variant == "v1":
            return self._v1_head(features["stage4"], train)
        return self._fpn_head(features, images.shape[1])

    def _v1_head(self, x: jax.Array, train: bool) -> dict[str, jax.Array]:
        s, b, c = self.grid_size, self.boxes_per_cell, self.num_classes
        x = x.reshape(x.shape[0], -1)
        x = nn.Dense(self.hidden_units, dtype=self.dtype, param_dtype=self.param_dtype,
                     name="fc1")(x)
        x = nn.leaky_relu(x, 0.1)
        x = nn.Dropout(self.dropout_rate, deterministic=not train, name="dropout")(x)
        x = nn.Dense(s * s * (b * 5 + c), dtype=self.dtype, param_dtype=self.param_dtype,
                     kernel_init=nn.initializers.normal(0.01), name="fc2")(x)
        return {"grid": x.astype(jnp.float32).reshape(x.shape[0], s, s, b * 5 + c)}

    def _conv(self, features: int, kernel: int, name: str, **kwargs) -> layers.Conv:
        return layers.Conv(features, (kernel, kernel), dtype=self.dtype,
                           param_dtype=self.param_dtype, impl=self.conv_impl, name=name, **kwargs)

    def _fpn_head(self, features: dict, image_size: int) -> dict[str, jax.Array]:
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
            expected = math.ceil(image_size / stride)
            if x.shape[1:3] != (expected, expected):
                raise ValueError(f"yolo: config.image_size={image_size} must be a multiple of "
                                 f"{max(FPN_STRIDES)} for the fpn variant")
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


_head_init = nn.initializers.normal(0.01)

register("yolo", Yolo)
