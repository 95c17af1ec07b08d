"""Import torchvision state dicts (``.pth`` / ``.pt`` through torch, ``.safetensors`` without).

    variables = load_torch("resnet50.safetensors", "resnet50")
    model = vision_jax.models.create("resnet50", **torch_model_kwargs("resnet50"))
    logits = model.apply(variables, images_nhwc)

torchvision's ResNets are our defaults (v1.5, bias-free convs, epsilon 1e-5); its VGGs add a
7x7 adaptive average pool before the classifier (``adaptive_pool=True``) and flatten NCHW
maps, which the first dense layer's rows absorb. ``num_classes`` is read off the ``fc`` /
``classifier.6`` bias unless given.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from vision_jax.weights import convert, layouts
from vision_jax.weights.convert import Entry, WeightsError

EXTRA_HINT = "pip install 'vision_jax[weights]'"
# Buffers that carry no value our model needs.
_IGNORED_SUFFIXES = (".num_batches_tracked",)


def torch_model_kwargs(model_name: str) -> dict[str, Any]:
    """The model options that reproduce torchvision's ``model_name`` exactly."""
    return {"adaptive_pool": True} if model_name.startswith("vgg") else {}


def load_torch(path_or_state_dict: str | os.PathLike | Mapping[str, Any], model_name: str, *,
               input_shape: tuple[int, int, int] | None = None,
               **model_kwargs: Any) -> dict[str, Any]:
    """Flax variables of ``model_name`` from a torchvision state dict (a file or a mapping of
    tensors / arrays); ``model_kwargs`` override `torch_model_kwargs`."""
    if isinstance(path_or_state_dict, Mapping):
        file, tensors = "state dict", {k: _to_numpy(v) for k, v in path_or_state_dict.items()}
    else:
        file = os.fspath(path_or_state_dict)
        tensors = read_state_dict(file)
    kwargs = convert.infer_num_classes({**torch_model_kwargs(model_name), **model_kwargs},
                                       tensors, _classifier_bias(model_name))
    model = convert.build_model(model_name, kwargs)
    expected = convert.expected_shapes(model, input_shape)
    entries = [entry for layer in layouts.model_layers(model_name, model)
               for entry in _entries(model_name, layer) if entry.target in expected]
    return convert.assemble(model_name, file, expected, entries, tensors,
                            ignored=lambda key: key.endswith(_IGNORED_SUFFIXES))


def read_state_dict(file: str) -> dict[str, np.ndarray]:
    """``{name: array}`` from a ``.safetensors`` file (numpy only) or a torch pickle."""
    if not os.path.exists(file):
        raise WeightsError(f"{file}: no such file; --file must be a .pth, .pt or .safetensors "
                           "state dict")
    if file.endswith(".safetensors"):
        try:
            from safetensors.numpy import load_file
        except ModuleNotFoundError:
            raise WeightsError(f"reading {file} needs the safetensors package: "
                               f"{EXTRA_HINT}") from None
        try:
            return dict(load_file(file))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
            raise WeightsError(f"{file} is not a readable safetensors file "
                               f"({type(e).__name__}: {_first_line(e)})") from None
    try:
        import torch
    except ModuleNotFoundError:
        raise WeightsError(f"reading {file} needs PyTorch (pip install torch); or save the "
                           "state dict with safetensors.torch.save_file as .safetensors, "
                           f"which needs only {EXTRA_HINT}") from None
    try:
        loaded = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged pickle
        raise WeightsError(f"{file} is not a readable PyTorch state dict "
                           f"({type(e).__name__}: {_first_line(e)})") from None
    for wrapper in ("state_dict", "model"):  # training checkpoints nest the weights
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
    if not isinstance(loaded, Mapping):
        raise WeightsError(f"{file} holds a {type(loaded).__name__}, not a state dict; save "
                           "model.state_dict()")
    return {k: _to_numpy(v) for k, v in loaded.items()}


def _to_numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().cpu().float().numpy()
    return np.asarray(value)


def _first_line(error: Exception) -> str:
    return (str(error).strip().splitlines() or [""])[0][:200]


def _classifier_bias(model_name: str) -> str:
    return "fc.bias" if model_name.startswith("resnet") else "classifier.6.bias"


def _entries(model_name: str, layer: layouts.Layer) -> list[Entry]:
    if layer.torch is None:
        raise WeightsError(f"{model_name} has no torchvision counterpart to import from; "
                           "choose a resnet or vgg model")
    name, ours = layer.torch, layer.path
    if layer.kind == "bn":
        return [Entry(f"params/{ours}/scale", f"{name}.weight"),
                Entry(f"params/{ours}/bias", f"{name}.bias"),
                Entry(f"batch_stats/{ours}/mean", f"{name}.running_mean"),
                Entry(f"batch_stats/{ours}/var", f"{name}.running_var")]
    kernel = {"conv": convert.OIHW_TO_HWIO, "dense": convert.TRANSPOSE,
              "flatten_dense": convert.nchw_flatten_dense(layer.channels)}[layer.kind]
    return [Entry(f"params/{ours}/kernel", f"{name}.weight", kernel),
            Entry(f"params/{ours}/bias", f"{name}.bias")]
