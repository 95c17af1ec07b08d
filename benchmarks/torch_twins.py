"""PyTorch versions of our classifiers, for the side-by-side training-throughput baseline.

Only ``benchmarks.train_throughput`` imports this, and only when PyTorch is installed: PyTorch
is never a dependency of the project. Each twin has the same layers, widths, paddings and
parameter count as the Flax model the config builds (``tests/test_benchmarks.py`` checks the
counts), written the way a PyTorch user would: NCHW, eager mode, ``nn.Module`` layers.
"""

from __future__ import annotations

from typing import Any

import ml_collections
import torch
from torch import nn

# The ResNet layouts of vision_jax.models.resnet: depth -> (blocks per stage, block kind).
RESNET_LAYOUTS = {
    "resnet18": ((2, 2, 2, 2), "basic"),
    "resnet34": ((3, 4, 6, 3), "basic"),
    "resnet50": ((3, 4, 6, 3), "bottleneck"),
}


class SeedCNN(nn.Module):
    """Conv32-Pool-Conv64-Pool-Conv128-Flatten-Dropout-Dense, VALID padding (seed_cnn)."""

    def __init__(self, num_classes: int, in_channels: int, image_size: int, dropout: float):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3), nn.ReLU(), nn.Flatten(), nn.Dropout(dropout))
        size = ((image_size - 2) // 2 - 2) // 2 - 2
        self.classifier = nn.Linear(128 * size * size, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out)]


class _Block(nn.Module):
    """A basic (3x3, 3x3) or bottleneck (1x1, 3x3 strided, 1x1 x4) residual block."""

    def __init__(self, kind: str, c_in: int, features: int, stride: int):
        super().__init__()
        if kind == "basic":
            c_out = features
            self.body = nn.Sequential(*_conv_bn(c_in, features, 3, stride), nn.ReLU(),
                                      *_conv_bn(features, features, 3))
        else:
            c_out = 4 * features
            self.body = nn.Sequential(*_conv_bn(c_in, features, 1), nn.ReLU(),
                                      *_conv_bn(features, features, 3, stride), nn.ReLU(),
                                      *_conv_bn(features, c_out, 1))
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out
                         else nn.Sequential(*_conv_bn(c_in, c_out, 1, stride)))
        self.out_channels = c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNet(nn.Module):
    """Stem (ImageNet 7x7/2 + max-pool, or CIFAR 3x3/1), four stages, global pool, FC."""

    def __init__(self, num_classes: int, in_channels: int, stage_sizes, block: str, width: int,
                 stem: str):
        super().__init__()
        if stem == "imagenet":
            stem_layers = [*_conv_bn(in_channels, width, 7, 2), nn.ReLU(),
                           nn.MaxPool2d(3, 2, padding=1)]
        else:
            stem_layers = [*_conv_bn(in_channels, width, 3), nn.ReLU()]
        blocks, channels = [], width
        for stage, count in enumerate(stage_sizes):
            for index in range(count):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(_Block(block, channels, width * 2**stage, stride))
                channels = blocks[-1].out_channels
        self.body = nn.Sequential(*stem_layers, *blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.body(x))


def has_twin(model_name: str) -> bool:
    return model_name == "seed_cnn" or model_name in RESNET_LAYOUTS


def build_twin(config: ml_collections.ConfigDict, in_channels: int) -> nn.Module:
    """The PyTorch twin of ``config``'s classifier; ``ValueError`` when there is none."""
    model_config: dict[str, Any] = dict(config.model)
    if config.model_name == "seed_cnn":
        return SeedCNN(config.num_classes, in_channels, config.image_size,
                       float(model_config.get("dropout_rate", 0.0)))
    if config.model_name in RESNET_LAYOUTS:
        stages, block = RESNET_LAYOUTS[config.model_name]
        return ResNet(config.num_classes, in_channels,
                      tuple(model_config.get("stage_sizes", stages)), block,
                      int(model_config.get("width", 64)), model_config.get("stem", "imagenet"))
    raise ValueError(f"no PyTorch twin for model {config.model_name!r}; twins exist for "
                     f"seed_cnn and {', '.join(RESNET_LAYOUTS)}")


def build_optimizer(config: ml_collections.ConfigDict, params) -> torch.optim.Optimizer:
    """The config's optimizer family at its base learning rate (schedules cost nothing here)."""
    name, lr = config.optimizer.name, float(config.optimizer.learning_rate)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=float(config.optimizer.momentum),
                               nesterov=bool(config.optimizer.nesterov))
    if name == "adam":
        return torch.optim.Adam(params, lr=lr)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=float(config.optimizer.weight_decay))
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    raise ValueError(f"no PyTorch optimizer for config.optimizer.name={name!r}")


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
