"""U-Net (Ronneberger et al., 2015) for semantic segmentation, with batch norm and SAME padding.

Encoder: ``depth`` levels of [conv3x3-BN-ReLU] x 2 followed by a 2x2 max-pool; the width starts
at ``base_width`` and doubles per level. A bottleneck block of width ``base_width * 2**depth``
follows. Decoder: per level, upsample x2, concatenate the encoder's feature map of that level
(the skip connection), then [conv3x3-BN-ReLU] x 2 at that level's width. A 1x1 conv gives
``num_classes`` logits per pixel.

Unlike the paper's unpadded convolutions, every conv pads, so the logits have the input's
height and width, which must be divisible by ``2**depth`` (checked at trace time).

Upsampling (``upsample``):
  * ``"transpose"`` - a 2x2 stride-2 transposed convolution. Its output windows do not
    overlap, so it is computed exactly as a 1x1 convolution to ``4 * features`` channels
    followed by a depth-to-space shuffle: the convolution still goes through
    `vision_jax.ops` (``conv_impl``) and no scatter-style transposed conv is needed.
  * ``"resize"``    - bilinear x2 resize, then a 3x3 conv (avoids checkerboard artefacts).
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from vision_jax.models import layers, register

UPSAMPLE_MODES = ("transpose", "resize")


def depth_to_space(x: jax.Array, block: int) -> jax.Array:
    """(N, H, W, block*block*C) -> (N, H*block, W*block, C); channel index = (dy, dx, c)."""
    n, h, w, channels = x.shape
    c = channels // (block * block)
    x = x.reshape(n, h, w, block, block, c)
    x = x.transpose(0, 1, 3, 2, 4, 5)
    return x.reshape(n, h * block, w * block, c)


class ConvBlock(nn.Module):
    """[conv3x3 (no bias) - BN - ReLU] x 2."""

    features: int
    dtype: layers.Dtype = jnp.float32
    param_dtype: layers.Dtype = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array, train: bool) -> jax.Array:
        for index in (1, 2):
            x = layers.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)), use_bias=False,
                            dtype=self.dtype, param_dtype=self.param_dtype, impl=self.conv_impl,
                            name=f"conv{index}")(x)
            x = layers.batch_norm(train, self.dtype, self.param_dtype, name=f"bn{index}")(x)
            x = nn.relu(x)
        return x


class Upsample(nn.Module):
    """x2 upsampling to `features` channels (see the module docstring for the two modes)."""

    features: int
    mode: str = "transpose"
    dtype: layers.Dtype = jnp.float32
    param_dtype: layers.Dtype = jnp.float32
    conv_impl: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.mode == "transpose":
            # Kernel (1, 1, C_in, 2*2*features): output pixel (2i+dy, 2j+dx) = x[i, j] @ W[dy, dx].
            x = layers.Conv(4 * self.features, (1, 1), padding="VALID", dtype=self.dtype,
                            param_dtype=self.param_dtype, impl=self.conv_impl, name="transpose")(x)
            return depth_to_space(x, 2)
        n, h, w, c = x.shape
        x = jax.image.resize(x, (n, 2 * h, 2 * w, c), method="bilinear")
        return layers.Conv(self.features, (3, 3), padding=((1, 1), (1, 1)), dtype=self.dtype,
                           param_dtype=self.param_dtype, impl=self.conv_impl, name="conv")(x)


class UNet(nn.Module):
    """Per-pixel classifier: (N, H, W, C) images -> (N, H, W, num_classes) float32 logits."""

    num_classes: int
    depth: int = 4
    base_width: int = 64
    upsample: str = "transpose"
    dropout_rate: float = 0.0
    dtype: layers.Dtype = jnp.float32
    param_dtype: layers.Dtype = jnp.float32
    conv_impl: str = "auto"
    pool_impl: str = "auto"

    def _check(self, images: jax.Array) -> None:
        if self.upsample not in UPSAMPLE_MODES:
            raise ValueError(f"unet: upsample={self.upsample!r} is unknown; set "
                             f"config.model.upsample to one of {UPSAMPLE_MODES}")
        if self.depth < 1 or self.base_width < 1:
            raise ValueError(f"unet: depth={self.depth} and base_width={self.base_width} must be "
                             ">= 1 (config.model.depth, config.model.base_width)")
        divisor = 2 ** self.depth
        height, width = images.shape[1:3]
        if height % divisor or width % divisor:
            suggestion = max(divisor, round(height / divisor) * divisor)
            raise ValueError(
                f"unet: the input is {height}x{width} but a depth-{self.depth} U-Net needs sizes "
                f"divisible by 2**depth = {divisor}; set config.image_size to a multiple of "
                f"{divisor} (e.g. {suggestion}) or change config.model.depth")

    @nn.compact
    def __call__(self, images: jax.Array, *, train: bool = False) -> jax.Array:
        self._check(images)
        common = dict(dtype=self.dtype, param_dtype=self.param_dtype, conv_impl=self.conv_impl)
        x = images.astype(self.dtype)
        skips = []
        for level in range(self.depth):
            x = ConvBlock(self.base_width * 2 ** level, name=f"down{level}", **common)(x, train)
            skips.append(x)
            x = layers.MaxPool((2, 2), impl=self.pool_impl, name=f"pool{level}")(x)
        x = ConvBlock(self.base_width * 2 ** self.depth, name="bottleneck", **common)(x, train)
        # Dropout where the features are most abstract and most numerous per pixel, as in the
        # paper (which drops out at the end of the contracting path).
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        for level in reversed(range(self.depth)):
            features = self.base_width * 2 ** level
            x = Upsample(features, self.upsample, name=f"up{level}", **common)(x)
            x = jnp.concatenate([skips[level], x], axis=-1)
            x = ConvBlock(features, name=f"up{level}_block", **common)(x, train)
        logits = layers.Conv(self.num_classes, (1, 1), padding="VALID", dtype=self.dtype,
                             param_dtype=self.param_dtype, impl=self.conv_impl,
                             kernel_init=nn.initializers.lecun_normal(), name="classifier")(x)
        return layers.to_float32_logits(logits)


register("unet", UNet)
