"""Turns a convolution's forward (and backward) pass into a ``conv2d`` implementation.

Every implementation takes the same public arguments (NHWC ``x``, HWIO ``kernel``,
``strides``, ``padding``, ``dilation``, ``groups``), resolves them with ``conv_geometry``,
rejects what it cannot run with a one-line ``ValueError`` and then runs its own passes.
That shell is written once, here; an implementation module keeps only its forward, its
backward (if autodiff is not good enough) and, on CPU, the size of its temporaries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax

from vision_jax.ops import kernels
from vision_jax.ops.conv_chunking import Backward, Forward, Sizer, chunked_passes, in_row_bands
from vision_jax.ops.conv_geometry import ConvGeometry, Padding, conv_geometry
from vision_jax.ops.custom_gradient import custom_gradient

Unsupported = Callable[[Sequence[int], Sequence[int], Sequence[int], int], str | None]


def _cast_like_inputs(backward_pass):
    def backward(geom, residuals, grad):
        x, kernel = residuals
        grad_x, grad_kernel = backward_pass(geom, residuals, grad)
        return grad_x.astype(x.dtype), grad_kernel.astype(kernel.dtype)

    return backward


def conv_kernel(
    name: str,
    forward: Forward,
    backward: Backward | None = None,
    *,
    unsupported: Unsupported | None = None,
    temp_elements_per_output_row: Sizer | None = None,
    band_multiple: int = 1,
    doc: str = "",
) -> Callable[..., jax.Array]:
    """The public ``conv2d_<name>(x, kernel, *, strides, padding, dilation, groups)``.

    ``forward(x, kernel, geom)``; ``backward(x, kernel, grad, geom) -> (grad_x,
    grad_kernel)``, or None to differentiate ``forward`` by autodiff; the residuals kept
    between the passes are ``x`` and ``kernel`` only. ``temp_elements_per_output_row``
    (the largest temporary, per output row of one image) makes both passes run over
    cache-sized batch chunks and row bands on CPU (``conv_chunking``).
    ``unsupported(kernel_size, strides, dilation, groups)`` says why arguments cannot run.
    """
    if backward is None:
        def run(geom: ConvGeometry, x: jax.Array, kernel: jax.Array) -> jax.Array:
            return forward(x, kernel, geom)
    else:
        if temp_elements_per_output_row is None:
            passes = (lambda geom, x, kernel: forward(x, kernel, geom),
                      lambda geom, residuals, grad: backward(*residuals, grad, geom))
        else:
            passes = chunked_passes(forward, backward, temp_elements_per_output_row)
        run = custom_gradient(passes[0], _cast_like_inputs(passes[1]))
    if temp_elements_per_output_row is not None:
        run = in_row_bands(run, temp_elements_per_output_row, band_multiple)

    def conv(x: jax.Array, kernel: jax.Array, *, strides: Sequence[int] = (1, 1),
             padding: Padding = "SAME", dilation: Sequence[int] = (1, 1),
             groups: int = 1) -> jax.Array:
        geom = conv_geometry(x.shape, kernel.shape, strides=strides, padding=padding,
                             dilation=dilation, groups=groups, impl=name)
        if unsupported is not None:
            reason = unsupported((geom.kernel_h, geom.kernel_w), geom.strides, geom.dilation,
                                 geom.groups)
            if reason:
                raise ValueError(reason)
        return run(geom, x, kernel)

    conv.__name__ = conv.__qualname__ = f"conv2d_{name}"
    conv.__doc__ = doc
    return conv


def register_conv(name: str, forward: Forward, backward: Backward | None = None, *,
                  backends: tuple[str, ...] | None = None,
                  unsupported: Unsupported | None = None, **options) -> kernels.Kernel:
    """``conv_kernel`` registered as ``conv2d(impl=name)`` for ``backends`` (None: all)."""
    run = conv_kernel(name, forward, backward, unsupported=unsupported, **options)
    return kernels.register("conv2d", name, run, backends=backends, unsupported=unsupported)
