"""Weights in and out of other frameworks: torchvision state dicts and Keras files.

    from vision_jax import weights
    variables = weights.load_torch("resnet50.safetensors", "resnet50")
    variables = weights.load_keras("vgg16.keras", "vgg16")

Each returns the ``{"params": ..., "batch_stats": ...}`` variables of our registered model,
whose outputs equal the source model's when the model is built with the source's options
(`torch_model_kwargs` / `keras_model_kwargs`; `import_model` does both). The command line
(``python -m vision_jax.weights import ...``) turns a file into a workdir.
"""

from __future__ import annotations

from vision_jax.weights.convert import WeightsError
from vision_jax.weights.keras_format import keras_model_kwargs, load_keras
from vision_jax.weights.torch_format import load_torch, torch_model_kwargs
from vision_jax.weights.transfer import freeze_labels, freeze_mask, merge_variables
from vision_jax.weights.workdir import import_model

__all__ = ["WeightsError", "freeze_labels", "freeze_mask", "import_model", "keras_model_kwargs",
           "load_keras", "load_torch", "merge_variables", "torch_model_kwargs"]
