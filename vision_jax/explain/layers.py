"""One way to read any layer of any registered model, by the names `vision_jax.summary` prints.

A layer is a module call, named by its module path joined with "/" (``conv2``,
``stage4_block2``, ``stage4_block2/conv1``): the same rule for every model, so nothing here
knows a model's name. Two tools, one naming:

- `read_layers` runs the model with Flax's ``capture_intermediates`` (filtered to the
  ``__call__`` of every module below the root) and returns every layer's output.
- `call_with_layer` intercepts one layer's call (``flax.linen.intercept_methods``) to return its
  output *and* to add a perturbation to it, so ``jax.grad`` with respect to that perturbation
  is the gradient of anything downstream with respect to the layer's output (Grad-CAM, Deep
  Dream); ``capture_intermediates`` can only record.

Both are pure functions of (variables, images), so they run under ``jit`` and on batches.
A module called more than once (shared weights) is read at its last call.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

Variables = Any


def _is_layer(module: nn.Module, method_name: str) -> bool:
    return method_name == "__call__" and bool(module.path)


def read_layers(model: nn.Module, variables: Variables, images: jax.Array,
                spatial_only: bool = False) -> dict[str, jax.Array]:
    """Every layer's output for ``images`` (N, H, W, C), by summary name (`layer_shapes`
    gives the call order: ``jit`` returns dicts with sorted keys).

    Only array outputs are kept (a backbone returning a dict of stages is skipped; its
    stages' own layers are there). ``spatial_only`` keeps the 4-D (N, h, w, c) outputs.
    """
    _, state = model.apply(variables, images, train=False, capture_intermediates=_is_layer,
                           mutable=["intermediates"])
    found: dict[str, jax.Array] = {}
    _flatten(state["intermediates"], (), found)
    if spatial_only:
        found = {name: value for name, value in found.items() if value.ndim == 4}
    return found


def _flatten(tree: Any, prefix: tuple[str, ...], out: dict[str, jax.Array]) -> None:
    for key, value in tree.items():
        if key == "__call__":
            output = value[-1]
            if isinstance(output, jax.Array) and prefix:
                out["/".join(prefix)] = output
        elif isinstance(value, dict) or hasattr(value, "items"):
            _flatten(value, (*prefix, key), out)


def layer_shapes(model: nn.Module, variables: Variables,
                 image_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    """Layer name -> output shape (batch first) for one batch of ``image_shape``, in the order
    the layers are called, without computing anything (``jax.eval_shape``)."""
    images = jax.ShapeDtypeStruct(tuple(image_shape), jnp.float32)
    order: list[str] = []

    def record(next_fun, args, kwargs, context):
        outputs = next_fun(*args, **kwargs)
        if _is_layer(context.module, context.method_name) and isinstance(outputs, jax.Array):
            name = "/".join(context.module.path)
            if name in order:
                order.remove(name)
            order.append(name)
        return outputs

    def run(x):
        with nn.intercept_methods(record):
            return read_layers(model, variables, x)

    shapes = jax.eval_shape(run, images)
    return {name: tuple(shapes[name].shape) for name in order if name in shapes}


def spatial_layers(model: nn.Module, variables: Variables,
                   image_shape: tuple[int, ...]) -> list[str]:
    """Names of the layers with (N, h, w, c) outputs, in call order."""
    return [name for name, shape in layer_shapes(model, variables, image_shape).items()
            if len(shape) == 4]


def last_spatial_layer(model: nn.Module, variables: Variables,
                       image_shape: tuple[int, ...]) -> str:
    """The last layer called whose output is still a (N, h, w, c) map: Grad-CAM's default."""
    names = spatial_layers(model, variables, image_shape)
    if not names:
        raise ValueError("the model has no layer with a spatial (N, h, w, c) output")
    return names[-1]


def layer_stride(model: nn.Module, variables: Variables, layer: str,
                 image_shape: tuple[int, ...]) -> tuple[float, float]:
    """Input pixels per cell of ``layer``'s map along (y, x), for (N, H, W, C) inputs.

    Read from the layer's output size at the input size and at twice it (``jax.eval_shape``,
    nothing computed): VALID convolutions shrink a map by a constant, so ``H / h`` overstates
    the stride (``seed_cnn``'s conv3 is 8x8 on 48x48 inputs, but its cells are 4 pixels
    apart). A layer whose size does not grow with the input (a global pool) gets ``H / h``.
    """
    batch, height, width, channels = image_shape
    sizes = [jax.eval_shape(lambda x: layer_output(model, variables, x, layer),
                            jax.ShapeDtypeStruct((1, scale * height, scale * width, channels),
                                                 jnp.float32)).shape[1:3]
             for scale in (1, 2)]
    (h1, w1), (h2, w2) = sizes
    return (height / (h2 - h1) if h2 > h1 else height / h1,
            width / (w2 - w1) if w2 > w1 else width / w1)


def check_layer(name: str, known: list[str], flag: str = "--layer") -> str:
    """``name`` if it is a known layer, else a one-line ConfigError listing some."""
    from vision_jax.errors import ConfigError

    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else \
            f"known: {', '.join(known[:8])}{', ...' if len(known) > 8 else ''}"
        raise ConfigError(f"{flag} {name!r} is not a spatial layer of this model; {hint} "
                          "(python -m vision_jax.summary lists them)")
    return name


def call_with_layer(model: nn.Module, variables: Variables, images: jax.Array, layer: str,
                    delta: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
    """(model output, ``layer``'s output) for ``images``; ``delta`` (same shape as the layer's
    output) is added to that output before the rest of the model sees it."""
    captured: dict[str, jax.Array] = {}

    def intercept(next_fun, args, kwargs, context):
        outputs = next_fun(*args, **kwargs)
        if _is_layer(context.module, context.method_name) and \
                "/".join(context.module.path) == layer:
            if delta is not None:
                outputs = outputs + delta
            captured["output"] = outputs
        return outputs

    with nn.intercept_methods(intercept):
        logits = model.apply(variables, images, train=False)
    if "output" not in captured:
        raise ValueError(f"layer {layer!r} was not called by the model")
    return logits, captured["output"]


class _LayerReached(Exception):  # noqa: N818 - control flow, not an error
    def __init__(self, output: jax.Array):
        super().__init__("layer reached")
        self.output = output


def layer_output(model: nn.Module, variables: Variables, images: jax.Array,
                 layer: str) -> jax.Array:
    """Just ``layer``'s output, running the model only up to it.

    The model stops at the layer (an exception unwinds the trace), so the input may have
    any size the layers up to it accept: a model whose classifier needs its training size
    (a flatten into a dense layer) can still be read at its conv layers on other sizes.
    """

    def intercept(next_fun, args, kwargs, context):
        outputs = next_fun(*args, **kwargs)
        if _is_layer(context.module, context.method_name) and \
                "/".join(context.module.path) == layer:
            raise _LayerReached(outputs)
        return outputs

    try:
        with nn.intercept_methods(intercept):
            model.apply(variables, images, train=False)
    except _LayerReached as reached:
        return reached.output
    raise ValueError(f"layer {layer!r} was not called by the model")
