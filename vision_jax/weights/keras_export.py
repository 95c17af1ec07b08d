"""Our ``seed_cnn`` and VGG variables as a Keras model: the course's "JSON + H5" deliverable.

The Keras model is built layer for layer like ours (keras.applications' layer names for the
VGGs, so `load_keras` reads the files back), its weights set from our variables (Keras shares
our NHWC / HWIO / (in, out) layouts, so nothing is transposed), and saved as ``model.json``
(``to_json``), ``model.weights.h5`` (``save_weights``) and a complete legacy ``model.h5``.
The classifier has no softmax: the Keras model outputs the same logits as ours.
"""

from __future__ import annotations

import os
from typing import Any

from vision_jax import models
from vision_jax.errors import ConfigError
from vision_jax.models import vgg
from vision_jax.weights import layouts


def export_keras(model_name: str, model_kwargs: dict[str, Any], variables: dict[str, Any],
                 input_shape: tuple[int, int, int], out_dir: str) -> list[str]:
    """Writes ``model.json``, ``model.weights.h5`` and ``model.h5`` into ``out_dir``."""
    num_classes = int(variables["params"]["classifier"]["bias"].shape[0])
    ours = models.create(model_name, num_classes=num_classes, **model_kwargs)
    source = keras_model(model_name, ours, input_shape)
    for layer in layouts.model_layers(model_name, ours):
        params = variables["params"][layer.path]
        source.get_layer(layer.keras or layer.path).set_weights(
            [params["kernel"], params["bias"]])
    paths = [os.path.join(out_dir, name) for name in ("model.json", "model.weights.h5",
                                                      "model.h5")]
    with open(paths[0], "w") as f:
        f.write(source.to_json() + "\n")
    source.save_weights(paths[1])
    source.save(paths[2])
    return paths


def keras_model(model_name: str, ours: Any, input_shape: tuple[int, int, int]) -> Any:
    """The Keras counterpart of our model ``ours`` (random weights)."""
    try:
        os.environ.setdefault("KERAS_BACKEND", "jax")
        import keras
    except ModuleNotFoundError:
        raise ConfigError("--format keras_h5 needs Keras: pip install keras==3.15.1 "
                          "h5py==3.16.0") from None
    layers = keras.layers
    if model_name == "seed_cnn":
        stack = []
        for index, features in enumerate((32, 64, 128), start=1):
            if index > 1:
                stack.append(layers.MaxPooling2D(2, name=f"pool{index - 1}"))
            stack.append(layers.Conv2D(features, 3, activation="relu", name=f"conv{index}"))
        stack.append(layers.Flatten(name="flatten"))
    elif model_name.startswith("vgg") and not ours.batch_norm:
        stack = _vgg_features(ours, input_shape, layers)
    else:
        raise ConfigError(f"--format keras_h5 exports seed_cnn and the VGGs without batch norm, "
                          f"not {model_name}; use --format safetensors")
    stack.append(layers.Dense(ours.num_classes, name="predictions" if model_name != "seed_cnn"
                              else "classifier"))
    return keras.Sequential([keras.Input(input_shape), *stack], name=model_name)


def _vgg_features(ours: Any, input_shape: tuple[int, int, int], layers: Any) -> list[Any]:
    stack, block, conv_in_block = [], 1, 1
    for entry in vgg.CONFIGS[ours.config]:
        if entry == vgg.POOL:
            stack.append(layers.MaxPooling2D(2, name=f"block{block}_pool"))
            block, conv_in_block = block + 1, 1
            continue
        stack.append(layers.Conv2D(int(entry), 3, padding="same", activation="relu",
                                   name=f"block{block}_conv{conv_in_block}"))
        conv_in_block += 1
    final_map = input_shape[0] // 2 ** (block - 1)
    flatten = ours.head == "flatten" or (ours.head == "auto" and final_map == 7)
    if ours.adaptive_pool and final_map != 7:
        raise ConfigError("--format keras_h5: Keras has no adaptive pool; export a torchvision "
                          "VGG at image_size 224, or use --format safetensors")
    stack.append(layers.Flatten(name="flatten") if flatten or ours.adaptive_pool
                 else layers.GlobalAveragePooling2D(name="avg_pool"))
    for index in (1, 2):
        stack.append(layers.Dense(ours.hidden_units, activation="relu", name=f"fc{index}"))
    return stack
