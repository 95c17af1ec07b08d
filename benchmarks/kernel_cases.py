"""The layer shapes ``benchmarks.kernels`` times: real layers of the models vision_jax trains.

Batch sizes are the training batch where two CPU cores can afford it (the MNIST convnet at
128) and small batches (1-8) for the ImageNet-sized layers. ``QUICK_*`` is a CI smoke subset.
"""

from __future__ import annotations

import dataclasses

from benchmarks.timing import conv_flops, pool_window_ops
from vision_jax.ops.conv_auto import conv_signature
from vision_jax.ops.conv_geometry import conv_geometry
from vision_jax.ops.pool_auto import pool_signature
from vision_jax.ops.pool_geometry import pool_geometry

Pair = tuple[int, int]


@dataclasses.dataclass(frozen=True)
class ConvCase:
    """A convolution layer: NHWC input (batch, size, size, in_c) and an HWIO kernel."""

    layer: str
    batch: int
    size: int
    in_c: int
    out_c: int
    kernel: int = 3
    strides: Pair = (1, 1)
    padding: str | tuple[Pair, Pair] = "SAME"
    ops: tuple[str, ...] = ("conv2d",)

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.batch, self.size, self.size, self.in_c)

    @property
    def kernel_shape(self) -> tuple[int, ...]:
        return (self.kernel, self.kernel, self.in_c, self.out_c)

    def out_shape(self) -> tuple[int, ...]:
        geom = conv_geometry(self.x_shape, self.kernel_shape, strides=self.strides,
                             padding=self.padding)
        return (self.batch, geom.out_h, geom.out_w, self.out_c)

    def shape(self) -> str:
        """The record's ``shape``: input, kernel, strides, padding."""
        pads = self.padding if isinstance(self.padding, str) else ",".join(
            str(p) for pair in self.padding for p in pair)
        x = "x".join(map(str, self.x_shape))
        kernel = "x".join(map(str, self.kernel_shape))
        return (f"x={x} kernel={kernel} strides={self.strides[0]}x{self.strides[1]} "
                f"padding={pads}")

    def flops(self, op: str) -> int:
        del op
        return conv_flops(self.x_shape, self.kernel_shape, self.out_shape())

    def auto_signature(self, dtype) -> str:
        """The auto-table key (``conv_auto.conv_signature``; it has no dtype)."""
        del dtype
        return conv_signature(self.x_shape, self.kernel_shape, self.strides)


@dataclasses.dataclass(frozen=True)
class PoolCase:
    """A spatial pooling layer over an NHWC input (batch, size, size, channels)."""

    layer: str
    batch: int
    size: int
    channels: int
    window: Pair = (2, 2)
    strides: Pair = (2, 2)
    padding: str | tuple[Pair, Pair] = "VALID"
    ops: tuple[str, ...] = ("max_pool", "avg_pool")

    @property
    def x_shape(self) -> tuple[int, ...]:
        return (self.batch, self.size, self.size, self.channels)

    def geometry(self):
        return pool_geometry(self.x_shape, self.window, strides=self.strides,
                             padding=self.padding)

    def out_shape(self) -> tuple[int, ...]:
        geom = self.geometry()
        return (self.batch, geom.out_h, geom.out_w, self.channels)

    def shape(self) -> str:
        """The record's ``shape``: ``PoolGeometry.describe()``, also the auto-table key."""
        return self.geometry().describe()

    def flops(self, op: str) -> int:
        del op
        return pool_window_ops(self.out_shape(), self.window)

    def auto_signature(self, dtype) -> str:
        """The auto-table key (``pool_auto.pool_signature``)."""
        return pool_signature(self.shape(), dtype)


Case = ConvCase | PoolCase

# Average pooling is timed on a subset: it has no select_and_scatter problem to measure.
MAX_ONLY = ("max_pool",)

FULL_CASES: tuple[Case, ...] = (
    # The course MNIST convnet (seed_cnn) at its training batch.
    ConvCase("mnist.conv1", 128, 28, 1, 32, padding="VALID"),
    ConvCase("mnist.conv2", 128, 13, 32, 64, padding="VALID"),
    ConvCase("mnist.conv3", 128, 5, 64, 128, padding="VALID"),
    PoolCase("mnist.pool1", 128, 26, 32),
    PoolCase("mnist.pool2", 128, 11, 64, ops=MAX_ONLY),
    # VGG-16 at 224x224.
    ConvCase("vgg16.conv3_1", 1, 56, 128, 256),
    ConvCase("vgg16.conv5_2", 2, 14, 512, 512),
    PoolCase("vgg16.pool1", 1, 224, 64, ops=MAX_ONLY),
    PoolCase("vgg16.pool3", 8, 56, 256),
    PoolCase("vgg16.pool5", 8, 14, 512, ops=MAX_ONLY),
    # ResNet-50 at 224x224.
    ConvCase("resnet50.stem", 2, 224, 3, 64, kernel=7, strides=(2, 2), padding=((3, 3), (3, 3))),
    PoolCase("resnet50.maxpool", 8, 112, 64, window=(3, 3), padding=((1, 1), (1, 1))),
    PoolCase("resnet50.maxpool_b1", 1, 112, 64, window=(3, 3), padding=((1, 1), (1, 1)),
             ops=MAX_ONLY),
    ConvCase("resnet50.conv2_3x3", 4, 56, 64, 64),
    ConvCase("resnet50.conv2_expand", 8, 56, 64, 256, kernel=1),
    ConvCase("resnet50.conv3_3x3_s2", 4, 56, 128, 128, strides=(2, 2), padding=((1, 1), (1, 1))),
    # U-Net at 128x128 (64 base filters).
    ConvCase("unet.enc3", 2, 32, 128, 256),
    ConvCase("unet.dec2", 2, 64, 256, 128),
    PoolCase("unet.pool1", 4, 128, 64, ops=MAX_ONLY),
)

QUICK_CASES: tuple[Case, ...] = (
    ConvCase("mnist.conv2", 8, 13, 32, 64, padding="VALID"),
    PoolCase("mnist.pool1", 8, 26, 32),
    PoolCase("resnet50.maxpool", 2, 56, 64, window=(3, 3), padding=((1, 1), (1, 1)),
             ops=("max_pool",)),
)
