"""ResNet-18/34/50/101/152 (He et al., 2015), version 1.5 by default.

v1.5: in the bottleneck block the stride sits on the 3x3 conv (not the first 1x1), as in
torchvision and the MLPerf reference. A shortcut is a 1x1 conv + BN when the block changes the
shape (stride or width), the identity otherwise. Convs followed by BN have no bias.

Options:
  * ``version="v1"``: the paper's and Keras' bottleneck, stride on the first 1x1 conv (ResNet-50
    v1 is the paper's 3.8 GMACs; v1.5 costs 4.1). Basic blocks are the same in both versions.
  * ``conv_bias``: every conv gets a bias (keras.applications' ResNets have them).
  * ``bn_epsilon``: batch-norm epsilon (1e-5, PyTorch's; keras.applications' ResNets: 1.001e-5).
  * ``stem="imagenet"``: 7x7/2 conv (64) + BN + ReLU + 3x3/2 max-pool (total stride 32).
    ``stem="cifar"``: 3x3/1 conv + BN + ReLU, no pool (total stride 8), for 32x32 inputs.
  * ``zero_init_last_bn``: the last BN scale of each residual block starts at zero, so every
    block starts as the identity (Goyal et al., 2017), which helps large-batch training.
  * ``dropout_rate``: dropout before the classifier (0 in the paper).
  * ``return_features``: return ``{"stage1": ..., "stage4": ...}``, the last map of each stage
    (strides 4/8/16/32 with the ImageNet stem), instead of logits; for detection necks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from vision_jax.models import layers, register

ModuleDef = Callable[..., Any]
STEMS = {"imagenet": 32, "cifar": 8}  # stem -> total down-sampling factor of the network
BLOCKS = ("basic", "bottleneck")
VERSIONS = ("v1", "v1.5")


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34)."""

    features: int
    strides: int
    conv: ModuleDef
    norm: ModuleDef
    zero_init_last_bn: bool = False
    expansion: ClassVar[int] = 1

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        y = self.conv(self.features, (3, 3), (self.strides,) * 2, name="conv1")(x)
        y = nn.relu(self.norm(name="bn1")(y))
        y = self.conv(self.features, (3, 3), name="conv2")(y)
        y = self.norm(name="bn2", scale_init=_last_scale_init(self.zero_init_last_bn))(y)
        return nn.relu(y + _shortcut(self, x, y))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, v1.5), 1x1 expand x4 (ResNet-50/101/152)."""

    features: int
    strides: int
    conv: ModuleDef
    norm: ModuleDef
    zero_init_last_bn: bool = False
    stride_on_1x1: bool = False  # v1 (paper, Keras) instead of v1.5
    expansion: ClassVar[int] = 4

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        strides_1x1, strides_3x3 = ((self.strides,) * 2, (1, 1)) if self.stride_on_1x1 else (
            (1, 1), (self.strides,) * 2)
        y = self.conv(self.features, (1, 1), strides_1x1, name="conv1")(x)
        y = nn.relu(self.norm(name="bn1")(y))
        y = self.conv(self.features, (3, 3), strides_3x3, name="conv2")(y)
        y = nn.relu(self.norm(name="bn2")(y))
        y = self.conv(self.features * self.expansion, (1, 1), name="conv3")(y)
        y = self.norm(name="bn3", scale_init=_last_scale_init(self.zero_init_last_bn))(y)
        return nn.relu(y + _shortcut(self, x, y))


def _last_scale_init(zero: bool) -> layers.Initializer:
    return nn.initializers.zeros_init() if zero else nn.initializers.ones_init()


def _shortcut(block: BasicBlock | Bottleneck, x: jax.Array, y: jax.Array) -> jax.Array:
    # Called inside the block's compact __call__, so the projection's params land in the block.
    if x.shape == y.shape:
        return x
    x = block.conv(y.shape[-1], (1, 1), (block.strides,) * 2, name="proj_conv")(x)
    return block.norm(name="proj_bn")(x)


class ResNet(nn.Module):
    """Stem, four stages of residual blocks (width doubling, stride 2 from stage 2), GAP, FC."""

    num_classes: int
    stage_sizes: tuple[int, ...] = (2, 2, 2, 2)
    block: str = "basic"
    stem: str = "imagenet"
    zero_init_last_bn: bool = False
    width: int = 64
    dtype: layers.Dtype = jnp.float32
    param_dtype: layers.Dtype = jnp.float32
    dropout_rate: float = 0.0
    conv_impl: str = "auto"
    pool_impl: str = "auto"
    return_features: bool = False
    version: str = "v1.5"
    conv_bias: bool = False
    bn_epsilon: float = layers.BATCH_NORM_EPSILON

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool = False) -> jax.Array:
        if self.stem not in STEMS:
            raise ValueError(f"ResNet: unknown stem {self.stem!r}; choose one of {list(STEMS)}")
        if self.block not in BLOCKS:
            raise ValueError(f"ResNet: unknown block {self.block!r}; choose one of {BLOCKS}")
        if self.version not in VERSIONS:
            raise ValueError(f"ResNet: unknown version {self.version!r}; choose one of "
                             f"{VERSIONS}")
        layers.check_spatial(images, STEMS[self.stem], f"resnet (stem={self.stem!r})", "input")
        conv = _conv_factory(self.dtype, self.param_dtype, self.conv_impl, self.conv_bias)
        norm = functools.partial(layers.batch_norm, train, self.dtype, self.param_dtype,
                                 epsilon=self.bn_epsilon)
        block_cls = BasicBlock if self.block == "basic" else functools.partial(
            Bottleneck, stride_on_1x1=self.version == "v1")

        x = images.astype(self.dtype)
        if self.stem == "imagenet":
            x = conv(self.width, (7, 7), (2, 2), name="stem_conv")(x)
        else:
            x = conv(self.width, (3, 3), name="stem_conv")(x)
        x = nn.relu(norm(name="stem_bn")(x))
        if self.stem == "imagenet":
            x = layers.MaxPool((3, 3), (2, 2), padding=((1, 1), (1, 1)), impl=self.pool_impl,
                               name="stem_pool")(x)

        features = {}
        for stage, num_blocks in enumerate(self.stage_sizes):
            for index in range(num_blocks):
                strides = 2 if stage > 0 and index == 0 else 1
                x = block_cls(self.width * 2**stage, strides, conv, norm,
                              zero_init_last_bn=self.zero_init_last_bn,
                              name=f"stage{stage + 1}_block{index + 1}")(x)
            features[f"stage{stage + 1}"] = x
        if self.return_features:
            return features

        # The last conv map, for class-activation maps; a no-op unless "intermediates" is mutable.
        self.sow("intermediates", "features", x)
        x = layers.GlobalAvgPool(name="global_pool")(x)
        x = nn.Dropout(self.dropout_rate, deterministic=not train, name="dropout")(x)
        x = nn.Dense(self.num_classes, dtype=self.dtype, param_dtype=self.param_dtype,
                     name="classifier")(x)
        return layers.to_float32_logits(x)


def _conv_factory(dtype: layers.Dtype, param_dtype: layers.Dtype, impl: str,
                  use_bias: bool = False) -> ModuleDef:
    """The conv constructor shared by the stem and every block; bias-free by default (each conv
    has a BN, which makes a bias redundant), with one for imported layouts that carry it."""

    def conv(features: int, kernel_size: tuple[int, int], strides: tuple[int, int] = (1, 1), *,
             name: str) -> layers.Conv:
        # Symmetric padding (k // 2 each side) as in the reference implementation; "SAME" would
        # pad a stride-2 conv of an even map only at the bottom/right.
        return layers.Conv(features, kernel_size, strides,
                           padding=layers.symmetric_padding(kernel_size), use_bias=use_bias,
                           dtype=dtype, param_dtype=param_dtype, impl=impl, name=name)

    return conv


_DEPTHS = {
    18: ((2, 2, 2, 2), "basic"),
    34: ((3, 4, 6, 3), "basic"),
    50: ((3, 4, 6, 3), "bottleneck"),
    101: ((3, 4, 23, 3), "bottleneck"),
    152: ((3, 8, 36, 3), "bottleneck"),
}
for _depth, (_stages, _block) in _DEPTHS.items():
    register(f"resnet{_depth}", functools.partial(ResNet, stage_sizes=_stages, block=_block))
