"""The train state: one pytree with everything a step reads and writes."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.extend
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


@dataclasses.dataclass(frozen=True)
class TracedInit:
    """`init_train_state` traced once: the state's shapes (for shardings and restores) and
    the jaxpr that creates it, so fresh parameters never re-run the model's Python."""

    jaxpr: Any  # ClosedJaxpr: rng -> flat state leaves
    shapes: TrainState  # of jax.ShapeDtypeStruct

    def create(self, rng: jax.Array, shardings: TrainState) -> TrainState:
        """Fresh state, created directly with `shardings` (compiled, not traced again)."""
        run = jax.extend.core.jaxpr_as_fun(self.jaxpr)
        treedef = jax.tree.structure(self.shapes)

        def state_from_jaxpr(key):
            return jax.tree.unflatten(treedef, run(*jax.tree.leaves(key)))

        return jax.jit(state_from_jaxpr, out_shardings=shardings)(rng)


def trace_init(model: nn.Module, tx: optax.GradientTransformation,
               image_shape: tuple) -> TracedInit:
    """Traces the model's init (and the optimiser's) once; shape errors surface here."""
    init = functools.partial(init_train_state, model, tx, image_shape=image_shape)
    key = jax.eval_shape(lambda: jax.random.key(0))  # abstract: nothing runs or compiles
    jaxpr, shapes = jax.make_jaxpr(init, return_shape=True)(key)
    return TracedInit(jaxpr, shapes)
