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
import numpy as np

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

    Read from the layer's output sizes at 8 and 16 times the input size (``jax.eval_shape``,
    nothing computed), rounded to a whole number of pixels: VALID convolutions shrink a map
    by a constant, so ``H / h`` overstates the stride (``seed_cnn``'s conv3 is 8x8 on 48x48
    inputs, but its cells are 4 pixels apart), and padded stride-2 layers round up (a
    ResNet's stride-32 stage is 2x2 on 48x48 and 3x3 on 96x96). A layer whose size does not
    grow with the input (a global pool) gets ``H / h``.
    """
    batch, height, width, channels = image_shape
    sizes = [jax.eval_shape(lambda x: layer_output(model, variables, x, layer),
                            jax.ShapeDtypeStruct((1, scale * height, scale * width, channels),
                                                 jnp.float32)).shape[1:3]
             for scale in (8, 16)]
    strides = []
    for pixels, small, large in zip((height, width), sizes[0], sizes[1], strict=True):
        if large <= small:
            strides.append(pixels / small)
            continue
        estimate = 8 * pixels / (large - small)
        strides.append(float(round(estimate)) if abs(estimate - round(estimate)) < 0.25
                       else estimate)
    return strides[0], strides[1]


def layer_origin(model: nn.Module, variables: Variables, layer: str,
                 image_shape: tuple[int, ...],
                 stride: tuple[float, float] | None = None) -> tuple[float, float]:
    """Where ``layer``'s cell (0, 0) looks, in input pixels (y, x; pixel p spans [p, p + 1)).

    Cell (i, j) is centred at ``origin + stride * (i, j)``, the centre of its receptive field.
    The sizes alone cannot say where the grid sits: floor-rounding pools drop the last rows
    (``seed_cnn``'s conv3 cells are centred at ``4k + 9``, a pixel up-left of a grid centred
    on the image), and a stride-2 conv with symmetric padding centres cell k on pixel 2k (a
    ResNet's stride-8 stage sits 3.5 pixels up-left of a centred grid). So it is measured:
    the receptive field of a middle cell is the support of its input gradient on a few
    random inputs, on an input grown at the bottom and right by a multiple of the stride
    (which moves no cell: VALID, symmetric and SAME padding all anchor the grid at the
    top-left) until the field is cut by no border. A layer whose size does not grow with
    the input (a global pool) gets a grid centred on the image. Cached per model and layer.
    """
    if stride is None:
        stride = layer_stride(model, variables, layer, image_shape)
    key = (model, layer, tuple(image_shape[1:]), tuple(stride))
    if key not in _ORIGINS:
        _ORIGINS[key] = _measure_origin(model, variables, layer, image_shape, stride)
    return _ORIGINS[key]


_ORIGINS: dict = {}


def centred_origin(cells: tuple[int, int], size: tuple[int, int],
                   stride: tuple[float, float]) -> tuple[float, float]:
    """Cell (0, 0)'s centre (y, x) for `cells` cells `stride` pixels apart, the grid centred
    on an image of `size` pixels."""
    return tuple(pixels / 2 - step * (count - 1) / 2
                 for count, pixels, step in zip(cells, size, stride, strict=True))


def _measure_origin(model, variables, layer, image_shape, stride) -> tuple[float, float]:
    _, height, width, channels = image_shape
    own_cells = jax.eval_shape(lambda x: layer_output(model, variables, x, layer),
                               jax.ShapeDtypeStruct((1, height, width, channels),
                                                    jnp.float32)).shape[1:3]
    centred = centred_origin(own_cells, (height, width), stride)
    if any(step != int(step) for step in stride):  # not a grid that grows with the input
        return centred
    origin = list(centred)
    grow = max(height, width)
    for _ in range(4):  # inputs up to 16x larger, for fields wider than the image
        extra = [int(np.ceil(grow / step) * step) for step in stride]
        size = (height + extra[0], width + extra[1])
        shape = (2, *size, channels)
        cells = jax.eval_shape(lambda x: layer_output(model, variables, x, layer),
                               jax.ShapeDtypeStruct(shape, jnp.float32)).shape[1:3]
        if tuple(cells) == tuple(own_cells):
            return centred  # the map does not grow with the input (a global pool)
        middle = (cells[0] // 2, cells[1] // 2)
        images = jax.random.normal(jax.random.key(0), shape, jnp.float32)
        # Not jitted: each size would compile once, for one call.
        grad = jax.grad(lambda x, row=middle[0], col=middle[1]: jnp.sum(
            layer_output(model, variables, x, layer)[:, row, col].astype(jnp.float32)))(images)
        seen = np.asarray(jnp.abs(grad).sum(axis=(0, 3))) > 0
        cut = False
        for axis in (0, 1):
            found = np.nonzero(seen.any(axis=1 - axis))[0]
            if not len(found):
                return centred  # the layer does not depend on the input
            low, high = int(found[0]), int(found[-1])
            cut = cut or low == 0 or high == size[axis] - 1
            origin[axis] = (low + high + 1) / 2 - stride[axis] * middle[axis]
        if not cut:
            break
        grow *= 2
    return origin[0], origin[1]


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
