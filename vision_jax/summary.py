"""Per-layer summary of a registered model: output shapes, parameters and multiply-accumulates.

    python -m vision_jax.summary --model resnet50 [--num_classes 1000] [--image_size 224]
                                 [--channels 3] [--json]

Nothing is computed on real arrays: the model is initialised under ``jax.eval_shape`` (so even
VGG-19 at 224x224 costs no memory) while ``flax.linen.intercept_methods`` records, for every
module call, its path, output shape and own parameters.

MACs are counted analytically, per image: for a layer with an N-D ``kernel`` parameter (conv:
HWIO, dense: IO) a MAC is one kernel weight applied at one output position, so
``macs = (output positions) * kernel.size``, i.e.
``out_h * out_w * k_h * k_w * c_in/groups * c_out``
for a conv and ``in * out`` for a dense layer. BatchNorm, activations and pooling are not
counted; ``flops = 2 * macs``.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vision_jax import models

DEFAULT_INPUT_SHAPE = (224, 224, 3)
_TRANSPOSED_CONVS = (nn.ConvTranspose,)


def summarize(model_name: str, num_classes: int = 1000, image_size: int | None = None,
              channels: int | None = None, **model_kwargs: Any) -> dict[str, Any]:
    """Parameters, MACs and per-layer shapes of ``model_name`` for one image.

    ``image_size`` / ``channels`` default to the model's ``default_input_shape`` class attribute
    when it has one (28x28x1 for ``seed_cnn``), else 224x224x3. Returns a dict with ``model``,
    ``input_shape``, ``num_classes``, ``params``, ``batch_stats``, ``macs``, ``flops`` and
    ``layers`` (a list of ``{name, type, shape, params, macs}``; ``shape`` excludes the batch).
    """
    if model_name not in models.names():
        raise ValueError(f"summary: unknown --model {model_name!r}; choose one of "
                         f"{', '.join(models.names())}")
    model = models.create(model_name, num_classes=_positive("num_classes", num_classes),
                          **model_kwargs)
    default_shape = getattr(model, "default_input_shape", DEFAULT_INPUT_SHAPE)
    height = width = _positive("image_size", default_shape[0] if image_size is None else image_size)
    depth = _positive("channels", default_shape[2] if channels is None else channels)
    images = jax.ShapeDtypeStruct((1, height, width, depth), jnp.float32)

    calls: list[dict[str, Any]] = []

    def record(next_fun, args, kwargs, context):
        outputs = next_fun(*args, **kwargs)
        if context.method_name == "__call__":
            calls.append(_describe_call(context.module, args, outputs))
        return outputs

    def init(x):
        keys = jax.random.split(jax.random.key(0))
        return model.init({"params": keys[0], "dropout": keys[1]}, x, train=False)

    with nn.intercept_methods(record):
        variables = jax.eval_shape(init, images)

    rows = _leaf_rows(calls)
    total_params = _count(variables.get("params", {}))
    unattributed = total_params - sum(row["params"] for row in rows)
    if unattributed:  # params created directly by a non-leaf module: keep the table's sum exact
        rows.append({"name": "(params of non-leaf modules)", "type": "", "shape": [],
                     "params": unattributed, "macs": 0})
    macs = sum(row["macs"] for row in rows)
    return {
        "model": model_name,
        "input_shape": [height, width, depth],
        "num_classes": num_classes,
        "params": total_params,
        "batch_stats": _count(variables.get("batch_stats", {})),
        "macs": macs,
        "flops": 2 * macs,
        "layers": rows,
    }


def _positive(field: str, value: int) -> int:
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"summary: --{field} must be a positive integer, got {value!r}")
    return value


def _count(tree: Any) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _describe_call(module: nn.Module, args: tuple, outputs: Any) -> dict[str, Any]:
    # Runs while tracing: only static shapes are read from the (abstract) arrays.
    own_params = module.variables.get("params", {})
    output = outputs[0] if isinstance(outputs, tuple | list) else outputs
    shape = list(getattr(output, "shape", ()))
    return {
        "path": tuple(module.path),
        "name": "/".join(module.path) or "(model)",
        "type": type(module).__name__,
        "shape": shape[1:],
        "params": _count(own_params),
        "macs": _macs(module, args, shape, own_params),
    }


def _macs(module: nn.Module, args: tuple, output_shape: list[int], own_params: Any) -> int:
    kernel = own_params.get("kernel") if hasattr(own_params, "get") else None
    if kernel is None or not output_shape:
        return 0
    if isinstance(module, _TRANSPOSED_CONVS):
        # A transposed conv applies every kernel weight once per *input* position.
        positions = math.prod(args[0].shape[1:-1])
    else:
        positions = math.prod(output_shape[1:-1])
    return positions * math.prod(kernel.shape)


def _leaf_rows(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The calls of modules without sub-modules, in execution order, and the outputs of the
    modules that group them (a ResNet block), after their last sub-module.

    Every name is the module path joined by "/", the name `vision_jax.explain.read_layers`
    returns a layer's output under. A grouping row (type: its class, e.g. ``BasicBlock``)
    has no parameters or MACs of its own (its sub-modules' rows carry them), so the columns
    still sum to the totals. A module called several times (shared weights) is listed each
    time but its parameters are counted only on the first call.
    """
    paths = {call["path"] for call in calls}
    parents = {path[:cut] for path in paths for cut in range(len(path))}
    rows, seen = [], set()
    for call in calls:
        if call["path"] in parents:
            if call["path"] and call["shape"]:  # a block's output (not the model's own)
                rows.append({"name": call["name"], "type": call["type"], "shape": call["shape"],
                             "params": 0, "macs": 0})
            continue
        params = 0 if call["path"] in seen else call["params"]
        seen.add(call["path"])
        rows.append({"name": call["name"], "type": call["type"], "shape": call["shape"],
                     "params": params, "macs": call["macs"]})
    return rows


def format_table(summary: dict[str, Any]) -> str:
    """The summary as a fixed-width text table with totals."""
    header = ("layer", "type", "output shape", "params", "MACs")
    lines = [(row["name"], row["type"], "x".join(map(str, row["shape"])) or "-",
              f"{row['params']:,}", f"{row['macs']:,}") for row in summary["layers"]]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines,
                                                                        strict=True)]
    rule = "  ".join("-" * width for width in widths)

    def fmt(cells):
        left = [str(c).ljust(w) for c, w in zip(cells[:3], widths[:3], strict=True)]
        right = [str(c).rjust(w) for c, w in zip(cells[3:], widths[3:], strict=True)]
        return "  ".join(left + right)

    height, width, depth = summary["input_shape"]
    footer = [
        f"model {summary['model']}, input {height}x{width}x{depth}, "
        f"{summary['num_classes']} classes",
        f"params      {summary['params']:,}",
        f"batch_stats {summary['batch_stats']:,}",
        f"MACs        {summary['macs']:,} ({summary['macs'] / 1e9:.3f} G)",
        f"FLOPs       {summary['flops']:,} (2 x MACs)",
    ]
    return "\n".join([fmt(header), rule, *map(fmt, lines), rule, *footer])


def _main(argv: list[str]) -> None:
    from absl import app, flags, logging

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    if not values["verbosity"].present:  # keep JAX's backend-probing INFO lines off stderr
        logging.set_verbosity(logging.WARNING)
    try:
        summary = summarize(values.model, values.num_classes, values.image_size, values.channels)
    except ValueError as error:  # bad flag values: one line, no traceback
        sys.exit(str(error))
    print(json.dumps(summary) if values.json else format_table(summary))


def _define_flags() -> None:
    # Defined only when run as a script, so that importing `summarize` registers no global flags.
    from absl import flags

    flags.DEFINE_string("model", None, "registered model name, e.g. resnet50")
    flags.DEFINE_integer("num_classes", 1000, "number of output classes")
    flags.DEFINE_integer("image_size", None, "square input side (default: the model's, or 224)")
    flags.DEFINE_integer("channels", None, "input channels (default: the model's, or 3)")
    flags.DEFINE_bool("json", False, "print one JSON object instead of the table")
    flags.mark_flag_as_required("model")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(_main)
