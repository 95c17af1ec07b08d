"""Where each of our layers lives in torchvision state dicts and keras.applications files.

One `Layer` per weight-bearing module of our model, in the model's order, with its name in
each source format; the format modules turn a layer into tensor entries (``.weight`` /
``vars/0``...). Layers are listed from the model's own options (stages, VGG config), so a
variant (``resnet101``, ``vgg19_bn``) needs no extra table.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from vision_jax.models import vgg
from vision_jax.weights.convert import WeightsError

KINDS = ("conv", "dense", "flatten_dense", "bn")


@dataclasses.dataclass(frozen=True)
class Layer:
    """Our module at ``path`` (``stage1_block1/conv1``) is ``torch`` / ``keras`` in the source
    (``None`` where that format has no such model). ``flatten_dense`` is a dense layer fed by a
    flattened ``channels``-deep map (the flatten order differs between NCHW and NHWC)."""

    path: str
    kind: str
    torch: str | None
    keras: str | None
    channels: int = 0


def model_layers(model_name: str, model: Any) -> list[Layer]:
    """The weight-bearing layers of ``model`` (built from registry name ``model_name``)."""
    if model_name.startswith("resnet"):
        return _resnet(model)
    if model_name.startswith("vgg"):
        return _vgg(model)
    if model_name == "seed_cnn":
        # A Keras Sequential model names its layers conv2d, conv2d_1, ...; the keras module
        # matches them by order instead of by name.
        return [*(Layer(f"conv{i}", "conv", None, None) for i in (1, 2, 3)),
                Layer("classifier", "dense", None, None)]
    raise WeightsError(f"importing weights into {model_name!r} is not supported; choose a "
                       "resnet, vgg or seed_cnn model")


def _resnet(model: Any) -> list[Layer]:
    convs_per_block = 2 if model.block == "basic" else 3
    found = [Layer("stem_conv", "conv", "conv1", "conv1_conv"),
             Layer("stem_bn", "bn", "bn1", "conv1_bn")]
    for stage, num_blocks in enumerate(model.stage_sizes):
        for index in range(num_blocks):
            ours = f"stage{stage + 1}_block{index + 1}"
            torch, keras = f"layer{stage + 1}.{index}", f"conv{stage + 2}_block{index + 1}"
            for conv in range(1, convs_per_block + 1):
                found += [Layer(f"{ours}/conv{conv}", "conv", f"{torch}.conv{conv}",
                                f"{keras}_{conv}_conv"),
                          Layer(f"{ours}/bn{conv}", "bn", f"{torch}.bn{conv}",
                                f"{keras}_{conv}_bn")]
            # Projections exist where the block changes the shape; entries whose target the
            # model lacks are dropped by the format modules, so list them for every block.
            found += [Layer(f"{ours}/proj_conv", "conv", f"{torch}.downsample.0",
                            f"{keras}_0_conv"),
                      Layer(f"{ours}/proj_bn", "bn", f"{torch}.downsample.1", f"{keras}_0_bn")]
    return [*found, Layer("classifier", "dense", "fc", "predictions")]


def _vgg(model: Any) -> list[Layer]:
    found, index, block, conv_in_block, channels = [], 0, 1, 1, 0
    for entry in vgg.CONFIGS[model.config]:  # torchvision numbers every module of `features`
        if entry == vgg.POOL:
            index, block, conv_in_block = index + 1, block + 1, 1
            continue
        ours = f"conv{block}_{conv_in_block}"
        found.append(Layer(ours, "conv", f"features.{index}", f"block{block}_conv{conv_in_block}"))
        index += 1
        if model.batch_norm:
            found.append(Layer(f"{ours}_bn", "bn", f"features.{index}", None))
            index += 1
        index, conv_in_block, channels = index + 1, conv_in_block + 1, int(entry)
    return [*found,
            Layer("fc1", "flatten_dense", "classifier.0", "fc1", channels),
            Layer("fc2", "dense", "classifier.3", "fc2"),
            Layer("classifier", "dense", "classifier.6", "predictions")]
