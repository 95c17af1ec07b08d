"""Seeded torchvision-style state dicts and input batches, from NumPy alone.

The torch parity references (``torch_<model>.npz``) hold only each state dict's tensor names
and shapes and torchvision's logits; the weights themselves are regenerated here, bit for bit,
by the generator (with torch) and by the CI test (without torch). Each tensor draws from its
own stream (seed, index), so one tensor's shape never shifts another's values.

Scales keep a 50-layer network's activations of order one, so the logits are not dominated by
rounding: He-normal kernels, small biases, batch-norm statistics near (0, 1).
"""

from __future__ import annotations

import math

import numpy as np

SEED = 20261201
BATCH, IMAGE_SIZE = 2, 224


def seeded_state_dict(names: list[str], shapes: list[tuple[int, ...]],
                      seed: int = SEED) -> dict[str, np.ndarray]:
    """``{name: float32 array}`` (int64 for ``num_batches_tracked``) in the given order."""
    tensors = {}
    for index, (name, shape) in enumerate(zip(names, shapes, strict=True)):
        rng = np.random.default_rng([seed, index])
        tensors[name] = _draw(rng, name, tuple(shape))
    return tensors


def _draw(rng: np.random.Generator, name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name.endswith("num_batches_tracked"):
        return np.zeros(shape, np.int64)
    if name.endswith("running_mean"):
        values = rng.normal(0.0, 0.1, shape)
    elif name.endswith("running_var"):
        values = rng.uniform(0.5, 1.5, shape)
    elif len(shape) >= 2:  # conv (O, I, H, W) or linear (O, I) weight
        fan_in = math.prod(shape[1:])
        values = rng.normal(0.0, math.sqrt(2.0 / fan_in), shape)
    elif _is_norm_weight(name):
        values = rng.uniform(0.5, 1.0, shape)
    else:  # biases (conv, linear, batch norm)
        values = rng.normal(0.0, 0.05, shape)
    return values.astype(np.float32)


def _is_norm_weight(name: str) -> bool:
    # A 1-D ".weight" is a batch norm's scale (conv and linear weights have 2+ dimensions).
    return name.endswith(".weight")


def seeded_images(seed: int = SEED) -> np.ndarray:
    """The input batch, NCHW float32 as torch takes it (transpose to NHWC for ours)."""
    rng = np.random.default_rng([seed, 10**6])
    return rng.standard_normal((BATCH, 3, IMAGE_SIZE, IMAGE_SIZE)).astype(np.float32)
