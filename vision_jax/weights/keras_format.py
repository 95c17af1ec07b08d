"""Import Keras weights: ``.keras`` archives, Keras 3 ``.weights.h5`` and legacy ``.h5`` files.

    variables = load_keras("vgg16.keras", "vgg16")
    model = vision_jax.models.create("vgg16", **keras_model_kwargs("vgg16", "vgg16.keras"))

Keras is NHWC with HWIO kernels and (in, out) dense kernels like us, so no array is
transposed; what differs is the architecture, chosen by `keras_model_kwargs`:
keras.applications' ResNets are v1 (stride on the first 1x1 conv) with conv biases and
batch-norm epsilon 1.001e-5. Layers are matched by their keras.applications names
(``block1_conv1``, ``conv2_block1_1_conv``...), and a ``Sequential`` model such as the course's
MNIST convnet (``seed_cnn``) by the order of its weight-bearing layers.

File layouts read (h5py only; Keras itself is not needed):
  * ``.keras``: a zip of ``config.json`` and ``model.weights.h5`` (``layers/<name>/vars/<i>``);
  * ``.weights.h5`` (``model.save_weights``): the same ``layers/<name>/vars/<i>`` tree;
  * legacy ``.h5`` (``model.save("x.h5")``, Keras 2 application files): ``layer_names`` and
    per-layer ``weight_names`` attributes, under ``model_weights/`` for a full model.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import re
import zipfile
from typing import Any

import numpy as np

from vision_jax.weights import convert, layouts
from vision_jax.weights.convert import Entry, WeightsError

EXTRA_HINT = "pip install 'vision_jax[weights]'"
# keras.applications.ResNet50/101/152 build their batch norms with this epsilon.
KERAS_RESNET_EPSILON = 1.001e-5


@dataclasses.dataclass
class KerasWeights:
    """A Keras file reduced to its weight-bearing layers, in model order."""

    file: str
    layers: dict[str, list[np.ndarray]]  # layer name -> its arrays (kernel, bias / BN's four)
    configs: dict[str, dict[str, Any]]  # layer name -> its Keras config (empty if unknown)

    def tensors(self) -> dict[str, np.ndarray]:
        """``{"<layer>/<index>": array}``: the flat table `convert.assemble` checks."""
        return {f"{name}/{index}": array for name, arrays in self.layers.items()
                for index, array in enumerate(arrays)}


def keras_model_kwargs(model_name: str, file: str | os.PathLike | None = None) -> dict[str, Any]:
    """The model options that reproduce the Keras model ``model_name`` (saved in ``file``,
    whose batch-norm epsilon wins over the keras.applications default when it records one)."""
    return _architecture(model_name, read_keras(os.fspath(file)).configs if file else {})


def _architecture(model_name: str, configs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    epsilon = next((c["epsilon"] for c in configs.values() if "epsilon" in c), None)
    if model_name.startswith("resnet"):
        return {"version": "v1", "conv_bias": True,
                "bn_epsilon": epsilon if epsilon is not None else KERAS_RESNET_EPSILON}
    if model_name.startswith("vgg") and model_name.endswith("_bn"):
        return {"bn_epsilon": epsilon if epsilon is not None else 1e-3}  # Keras' layer default
    return {}


def load_keras(path: str | os.PathLike, model_name: str, *,
               input_shape: tuple[int, int, int] | None = None,
               **model_kwargs: Any) -> dict[str, Any]:
    """Flax variables of ``model_name`` from a Keras file; ``model_kwargs`` override
    `keras_model_kwargs`."""
    weights = read_keras(os.fspath(path))
    kwargs = {**_architecture(model_name, weights.configs), **model_kwargs}
    layers = layouts.model_layers(model_name, convert.build_model(model_name, {
        **kwargs, "num_classes": kwargs.get("num_classes", 1)}))
    if any(layer.keras is None for layer in layers):
        layers = _match_by_order(model_name, weights, layers)
    tensors = weights.tensors()
    kwargs = convert.infer_num_classes(kwargs, tensors, f"{layers[-1].keras}/1")
    model = convert.build_model(model_name, kwargs)
    expected = convert.expected_shapes(model, input_shape)
    entries = [entry for layer in layers for entry in _entries(layer) if entry.target in expected]
    return convert.assemble(model_name, weights.file, expected, entries, tensors)


def read_keras(file: str) -> KerasWeights:
    """The weight-bearing layers of a ``.keras``, ``.weights.h5`` or legacy ``.h5`` file."""
    if not os.path.exists(file):
        raise WeightsError(f"{file}: no such file; --file must be a .keras or .h5 Keras file")
    try:
        import h5py
    except ModuleNotFoundError:
        raise WeightsError(f"reading {file} needs the h5py package: {EXTRA_HINT}") from None
    config = None
    try:
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as archive:
                config = json.loads(archive.read("config.json"))
                handle = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        else:
            handle = h5py.File(file, "r")
        with handle:
            if "model_config" in handle.attrs:
                config = json.loads(handle.attrs["model_config"])
            layers = _legacy_layers(handle) if _is_legacy(handle) else _keras3_layers(handle)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as e:
        raise WeightsError(f"{file} is not a readable Keras file ({type(e).__name__}: "
                           f"{str(e).splitlines()[0][:200] if str(e) else ''}); expected a "
                           ".keras archive or an .h5 file Keras wrote") from None
    configs = _layer_configs(config)
    if configs:  # the model's own order (HDF5 groups iterate alphabetically)
        order = [name for name in configs if name in layers]
        layers = {name: layers[name] for name in order + sorted(layers.keys() - set(order))}
    return KerasWeights(file, layers, configs)


def _is_legacy(handle: Any) -> bool:
    return "layer_names" in handle.attrs or "model_weights" in handle


def _legacy_layers(handle: Any) -> dict[str, list[np.ndarray]]:
    group = handle["model_weights"] if "model_weights" in handle else handle
    layers = {}
    for name in _strings(group.attrs["layer_names"]):
        weight_names = _strings(group[name].attrs.get("weight_names", []))
        if weight_names:
            layers[name] = [np.asarray(group[name][w]) for w in weight_names]
    return layers


def _keras3_layers(handle: Any) -> dict[str, list[np.ndarray]]:
    if "layers" not in handle:
        raise KeyError("no 'layers' group and no 'layer_names' attribute")
    layers = {}
    # Groups are named by layer class and creation order (conv2d, conv2d_1, ...); the layer's
    # own name (conv1_conv) is an attribute of its `vars` group.
    for group in sorted(handle["layers"], key=_natural_key):
        variables = handle["layers"][group].get("vars")
        if variables is not None and len(variables):
            name = _strings([variables.attrs.get("name", group)])[0]
            layers[name] = [np.asarray(variables[str(i)]) for i in range(len(variables))]
    return layers


def _strings(values: Any) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def _natural_key(name: str) -> tuple:
    # conv2d, conv2d_1, ..., conv2d_10: Keras' automatic names in creation order.
    match = re.fullmatch(r"(.*?)(?:_(\d+))?", name)
    return match.group(1), int(match.group(2) or 0)


def _layer_configs(config: dict | None) -> dict[str, dict[str, Any]]:
    if not config:
        return {}
    entries = config.get("config", {}).get("layers", [])
    return {entry["config"]["name"]: entry["config"] for entry in entries
            if "name" in entry.get("config", {})}


def _match_by_order(model_name: str, weights: KerasWeights,
                    layers: list[layouts.Layer]) -> list[layouts.Layer]:
    names = list(weights.layers)
    if len(names) != len(layers):
        raise WeightsError(
            f"{weights.file} has {len(names)} layers with weights ({', '.join(names[:8])}) but "
            f"{model_name} has {len(layers)} ({', '.join(layer.path for layer in layers)}); is "
            f"this a {model_name} model?")
    return [dataclasses.replace(layer, keras=name) for layer, name in zip(layers, names,
                                                                          strict=True)]


def _entries(layer: layouts.Layer) -> list[Entry]:
    name, ours = layer.keras, layer.path
    if layer.kind == "bn":  # keras.applications' batch norms have both scale and center
        return [Entry(f"params/{ours}/scale", f"{name}/0"),
                Entry(f"params/{ours}/bias", f"{name}/1"),
                Entry(f"batch_stats/{ours}/mean", f"{name}/2"),
                Entry(f"batch_stats/{ours}/var", f"{name}/3")]
    return [Entry(f"params/{ours}/kernel", f"{name}/0"),
            Entry(f"params/{ours}/bias", f"{name}/1")]
