"""Turning a flat table of foreign tensors into Flax variables, with one-line errors.

Both importers reduce their file to ``{source key: np.ndarray}`` and to a list of `Entry`s
(which source tensor fills which of our variables, through which layout transform); this
module checks the two against each other and against the shapes our model expects, and
assembles the ``{"params": ..., "batch_stats": ...}`` tree. Keeping that in one place is what
makes the error for, say, ResNet-50 weights given to ``vgg16`` the same for every format.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from vision_jax import models
from vision_jax.errors import ConfigError

Shape = tuple[int, ...]
DEFAULT_INPUT_SHAPE = (224, 224, 3)


@contextlib.contextmanager
def config_errors_exit() -> Iterator[None]:
    """Prints ``error: <message>`` and exits 2 on a `vision_jax.errors.ConfigError`.

    The entry points' `vision_jax.cli.user_errors_exit` catches the training layer's own
    ConfigError, not yet this base class; the weights and export commands add this.
    """
    try:
        yield
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


class WeightsError(ConfigError):
    """A weights file that cannot be imported; the message is one line naming the file or
    tensor and the fix (entry points print ``error: <message>`` and exit 2)."""


@dataclasses.dataclass(frozen=True)
class Transform:
    """A layout conversion: source array -> our array, and our shape -> the source's shape
    (the latter only to name the expected shape in an error before converting anything)."""

    name: str
    apply: Callable[[np.ndarray, Shape], np.ndarray]
    source_shape: Callable[[Shape], Shape]


IDENTITY = Transform("identity", lambda a, shape: a, lambda shape: shape)
# PyTorch convs are OIHW, ours (and Keras') HWIO.
OIHW_TO_HWIO = Transform("oihw_to_hwio", lambda a, shape: a.transpose(2, 3, 1, 0),
                         lambda s: (s[3], s[2], s[0], s[1]))
# PyTorch Linear weights are (out, in), ours (in, out).
TRANSPOSE = Transform("transpose", lambda a, shape: a.T, lambda s: (s[1], s[0]))


def nchw_flatten_dense(channels: int) -> Transform:
    """A torch Linear fed by ``x.flatten(1)`` of an NCHW map of ``channels`` channels.

    Its input index is ``c * H * W + h * W + w``; ours (flattening NHWC) is
    ``(h * W + w) * C + c``, so its rows are permuted as well as transposed. H = W is assumed
    (both are square here: the map after VGG's 7x7 pool).
    """

    def apply(a: np.ndarray, shape: Shape) -> np.ndarray:
        side = math.isqrt(shape[0] // channels)
        out_features = a.shape[0]
        return (a.reshape(out_features, channels, side, side)
                .transpose(2, 3, 1, 0).reshape(shape[0], out_features))

    return Transform("nchw_flatten_dense", apply, lambda s: (s[1], s[0]))


@dataclasses.dataclass(frozen=True)
class Entry:
    """Our variable ``target`` ("params/stem_conv/kernel") comes from source tensor ``source``."""

    target: str
    source: str
    transform: Transform = IDENTITY


def build_model(model_name: str, model_kwargs: Mapping[str, Any]) -> Any:
    """`vision_jax.models.create` with its ValueError/TypeError as a one-line WeightsError."""
    try:
        return models.create(model_name, **model_kwargs)
    except (ValueError, TypeError) as e:
        raise WeightsError(str(e)) from None


def expected_shapes(model: Any, input_shape: Shape | None = None) -> dict[str, Shape]:
    """``{"params/a/b/kernel": shape, "batch_stats/...": shape}`` of ``model``, computed
    abstractly (no memory for VGG's 100M-parameter classifier)."""
    shape = input_shape or getattr(model, "default_input_shape", DEFAULT_INPUT_SHAPE)
    images = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), images)
    flat = traverse_util.flatten_dict(dict(variables), sep="/")
    return {path: tuple(leaf.shape) for path, leaf in flat.items()}


def assemble(model_name: str, file: str, expected: Mapping[str, Shape], entries: Iterable[Entry],
             tensors: Mapping[str, np.ndarray], ignored: Callable[[str], bool] = lambda k: False,
             ) -> dict[str, Any]:
    """Our variables from ``tensors``; the first missing, shape-mismatched or unexpected
    tensor is a one-line `WeightsError` that names it with both shapes."""
    entries = list(entries)
    unfilled = expected.keys() - {entry.target for entry in entries}
    if unfilled:  # a layout that forgot a variable: a bug here, not in the user's file
        raise AssertionError(f"no source for {sorted(unfilled)[:3]} in the {model_name} layout")
    flat = {}
    for entry in entries:
        want = entry.transform.source_shape(expected[entry.target])
        if entry.source not in tensors:
            raise WeightsError(
                f"{file}: missing tensor {entry.source!r} (shape {want}) that {model_name} needs"
                f"{_first_tensors_hint(tensors)}; is this a {model_name} file, and are the "
                "model options (num_classes, ...) those it was saved with?")
        array = np.asarray(tensors[entry.source])
        if tuple(array.shape) != want:
            raise WeightsError(
                f"{file}: tensor {entry.source!r} has shape {tuple(array.shape)} but "
                f"{model_name} expects {want} for {entry.target}; build the model with the "
                "options the weights were trained with (num_classes, ...)")
        flat[entry.target] = jnp.asarray(
            entry.transform.apply(array, expected[entry.target]), jnp.float32)
    used = {entry.source for entry in entries}
    for key in tensors:
        if key not in used and not ignored(key):
            raise WeightsError(
                f"{file}: unexpected tensor {key!r} (shape {tuple(np.shape(tensors[key]))}) "
                f"has no place in {model_name}; is this a {model_name} file?")
    return traverse_util.unflatten_dict(flat, sep="/")


def _first_tensors_hint(tensors: Mapping[str, np.ndarray]) -> str:
    if not tensors:
        return " (the file holds no tensors)"
    key = next(iter(tensors))
    return f" (the file's first tensor is {key!r}, shape {tuple(np.shape(tensors[key]))})"


def infer_num_classes(model_kwargs: dict[str, Any], tensors: Mapping[str, np.ndarray],
                      classifier_bias: str) -> dict[str, Any]:
    """``model_kwargs`` with ``num_classes`` taken from the classifier's bias when not given.

    Without that bias the file is not this model's: a placeholder of 1 lets `assemble` name
    the first tensor that is missing (the classifier's last, if everything else is there).
    """
    if "num_classes" in model_kwargs:
        return model_kwargs
    num_classes = (int(np.shape(tensors[classifier_bias])[0]) if classifier_bias in tensors
                   else 1)
    return {**model_kwargs, "num_classes": num_classes}
