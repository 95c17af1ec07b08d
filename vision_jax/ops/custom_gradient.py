"""The one custom-VJP wrapper every hand-differentiated kernel goes through.

A kernel with its own backward pass (im2col, shifted-sum and Winograd convolutions, the
Pallas convolution, max pooling by reshape, by strided slices and in Pallas) gives a forward,
a backward and, when it keeps something other than its inputs between the passes, a forward
that also returns those residuals. Everything static (a geometry, a flag) travels as the first
argument, so it is hashable and never differentiated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax


def custom_gradient(
    forward: Callable[..., jax.Array],
    backward: Callable[[Any, Any, jax.Array], tuple[jax.Array, ...]],
    forward_with_residuals: Callable[..., tuple[jax.Array, Any]] | None = None,
) -> Callable[..., jax.Array]:
    """``f(static, *arrays) = forward(static, *arrays)`` whose gradient is
    ``backward(static, residuals, grad)``, one gradient per array.

    The residuals are the arrays themselves unless ``forward_with_residuals(static, *arrays)
    -> (output, residuals)`` is given (e.g. a max pool keeps its argmax, not its input).
    """
    fn = jax.custom_vjp(forward, nondiff_argnums=(0,))

    def forward_pass(static, *arrays):
        if forward_with_residuals is not None:
            return forward_with_residuals(static, *arrays)
        return forward(static, *arrays), arrays

    fn.defvjp(forward_pass, backward)
    return fn
