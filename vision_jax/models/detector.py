"""What a detection model brings besides its forward pass, so the detection task never needs
to know which head it trains.

A detector is a registered ``flax.linen.Module`` whose raw head outputs only it can read. It
also implements:

* ``encode(gt_boxes, gt_classes, image_size)``: the ground truth as the head's training
  targets (which cell / location / predictor learns which box);
* ``loss(outputs, gt_boxes, gt_classes, image_size)``: encodes and returns the batch loss
  and per-part sums over the batch (reported as ``sum / count`` by the task);
* ``decode(outputs, image_size)``: candidate boxes (N, K, 4) xyxy pixels of the model input,
  scores (N, K) and classes (N, K), before non-maximum suppression (the task's job);
* ``check(image_size, configured)``: a one-line problem (an input size it cannot take, an
  option in ``configured`` -- the keys set in ``config.model`` -- that its other options
  leave unused), or None.

Its options (geometry, loss weights) are its own dataclass fields, set in ``config.model``
and declared with `vision_jax.sections.option` so `options_section` turns them into a typed,
checked config section: a field the chosen detector does not take is a one-line error.
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from collections.abc import Collection
from typing import Any, Protocol, runtime_checkable

import jax

from vision_jax import sections

# Fields of every model that config.model does not set (they come from other config fields).
_NOT_OPTIONS = ("parent", "name", "num_classes", "dtype", "param_dtype")


@runtime_checkable
class Detector(Protocol):
    """The interface the detection task trains and evaluates (module docstring)."""

    def encode(self, gt_boxes: jax.Array, gt_classes: jax.Array,
               image_size: int) -> dict[str, jax.Array]: ...

    def loss(self, outputs: dict[str, jax.Array], gt_boxes: jax.Array, gt_classes: jax.Array,
             image_size: int) -> tuple[jax.Array, dict[str, jax.Array]]: ...

    def decode(self, outputs: dict[str, jax.Array],
               image_size: int) -> tuple[jax.Array, jax.Array, jax.Array]: ...

    def check(self, image_size: int, configured: Collection[str] = ()) -> str | None: ...


@functools.cache
def options_section(model_cls: type) -> type:
    """A frozen config section of a detector's options: its fields declared with `option`."""
    hints = typing.get_type_hints(model_cls)
    specs = []
    for f in dataclasses.fields(model_cls):
        if f.name in _NOT_OPTIONS or "doc" not in f.metadata:
            continue
        specs.append((f.name, hints.get(f.name, Any),
                      dataclasses.field(default=f.default, metadata=f.metadata)))
    return dataclasses.make_dataclass(f"{model_cls.__name__}Options", specs, frozen=True)


def build_options(model_cls: type, values, prefix: str = "config.model") -> Any:
    """``config.model`` as the detector's typed options; unknown fields, wrong types and
    failed checks are one-line `ConfigError`s naming the field."""
    return sections.build(options_section(model_cls), values, prefix)
