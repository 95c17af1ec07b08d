"""The train state: one pytree with everything a step reads and writes."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct


class TrainState(struct.PyTreeNode):
    step: jax.Array
    params: Any
    batch_stats: Any  # {} for models without batch norm
    opt_state: optax.OptState

    def variables(self) -> dict:
        """The variables dict for `model.apply`."""
        if self.batch_stats:
            return {"params": self.params, "batch_stats": self.batch_stats}
        return {"params": self.params}


def init_train_state(
    model: nn.Module, tx: optax.GradientTransformation, rng: jax.Array, image_shape: tuple
) -> TrainState:
    """Initialises parameters from a batch of one image of `image_shape` (H, W, C)."""
    dummy = jnp.zeros((1, *image_shape), jnp.float32)
    variables = model.init({"params": rng, "dropout": rng}, dummy, train=False)
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables.get("batch_stats", {}),
        opt_state=tx.init(params),
    )
