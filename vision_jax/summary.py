"""Per-layer summary of a registered model: output shapes, parameters and multiply-accumulates.

    python -m vision_jax.summary --model resnet50 [--num_classes 1000] [--image_size 224]
                                 [--channels 3] [--json]
    python -m vision_jax.summary --config configs/mnist_cnn.py[:arg] [--config.x=...]
    python -m vision_jax.summary --workdir runs/mnist

``--config`` and ``--workdir`` show the model a config (or the run a workdir holds) trains:
its model options, its ``num_classes`` and its ``image_size``, instead of ``--model``'s
ImageNet defaults. The totals follow Keras' ``model.summary()``: trainable parameters (the
``params`` collection), non-trainable ones (``batch_stats`` and any other collection) and
their size in MB (Keras' unit: 2**20 bytes, at the variables' own dtypes).

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
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from vision_jax import models

DEFAULT_INPUT_SHAPE = (224, 224, 3)
MB = 2**20  # Keras' "MB" in model.summary()
_TRANSPOSED_CONVS = (nn.ConvTranspose,)


def summarize(model_name: str, num_classes: int = 1000, image_size: int | None = None,
              channels: int | None = None, **model_kwargs: Any) -> dict[str, Any]:
    """Parameters, MACs and per-layer shapes of ``model_name`` for one image.

    ``image_size`` / ``channels`` default to the model's ``default_input_shape`` class attribute
    when it has one (28x28x1 for ``seed_cnn``), else 224x224x3. Returns a dict with ``model``,
    ``input_shape``, ``num_classes``, ``params``, ``batch_stats``, ``macs``, ``flops`` and
    ``layers`` (a list of ``{name, type, shape, params, macs}``; ``shape`` excludes the batch),
    plus Keras' totals: ``trainable_params``, ``non_trainable_params``, ``total_params`` and
    ``size_mb``.
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
    non_trainable = sum(_count(tree) for name, tree in variables.items() if name != "params")
    return {
        "model": model_name,
        "input_shape": [height, width, depth],
        "num_classes": num_classes,
        "params": total_params,
        "batch_stats": _count(variables.get("batch_stats", {})),
        "macs": macs,
        "flops": 2 * macs,
        "layers": rows,
        "trainable_params": total_params,
        "non_trainable_params": non_trainable,
        "total_params": total_params + non_trainable,
        "size_mb": _bytes(variables) / MB,
    }


def summarize_config(config: Any, image_size: int | None = None,
                     channels: int | None = None) -> dict[str, Any]:
    """`summarize` of the model a training config builds: its ``model_name``, model options,
    ``num_classes`` and ``image_size`` (``image_size``/``channels`` override them).

    The input depth is ``config.image_channels`` when set, else the number of per-channel
    ``normalize.mean`` values when there are several, else the model's default (the dataset
    is not opened: ``--channels`` fixes a greyscale dataset normalised with one value).
    A config mistake is a `ConfigError` naming the field.
    """
    from vision_jax.training.run_config import parse_config

    run = parse_config(config)
    kwargs = dict(run.model.kwargs)
    num_classes = kwargs.pop("num_classes")
    if channels is None and run.data.image_channels:
        channels = int(run.data.image_channels)
    mean = tuple(config.get("normalize", {}).get("mean", ()) or ())
    if channels is None and len(mean) > 1:
        channels = len(mean)
    return summarize(run.model.model_name, num_classes,
                     run.data.image_size if image_size is None else image_size, channels,
                     **kwargs)


def _positive(field: str, value: int) -> int:
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"summary: --{field} must be a positive integer, got {value!r}")
    return value


def _count(tree: Any) -> int:
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def _bytes(tree: Any) -> int:
    return sum(math.prod(leaf.shape) * jnp.dtype(leaf.dtype).itemsize
               for leaf in jax.tree.leaves(tree))


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
        f"Total params:         {summary['total_params']:,} ({summary['size_mb']:.2f} MB)",
        f"Trainable params:     {summary['trainable_params']:,}",
        f"Non-trainable params: {summary['non_trainable_params']:,} (batch_stats)",
        f"MACs:                 {summary['macs']:,} ({summary['macs'] / 1e9:.3f} G)",
        f"FLOPs:                {summary['flops']:,} (2 x MACs)",
    ]
    return "\n".join([fmt(header), rule, *map(fmt, lines), rule, *footer])


def _main(argv: list[str]) -> None:
    from absl import app, flags, logging

    from vision_jax.cli import user_errors_exit

    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    if not values["verbosity"].present:  # keep JAX's backend-probing INFO lines off stderr
        logging.set_verbosity(logging.WARNING)
    with user_errors_exit():
        summary = _summary_for_flags(values)
    print(json.dumps(summary) if values.json else format_table(summary))


def _summary_for_flags(values: Any) -> dict[str, Any]:
    """The summary one of --model, --config or --workdir names; bad values raise ConfigError."""
    from vision_jax.errors import ConfigError

    given = [name for name in ("model", "config", "workdir") if values[name].value is not None]
    if len(given) != 1:
        raise ConfigError("give exactly one of --model NAME, --config FILE[:arg] or --workdir "
                          f"DIR (got {', '.join('--' + g for g in given) or 'none'})")
    try:
        if values.model is not None:
            num_classes = 1000 if values.num_classes is None else values.num_classes
            return summarize(values.model, num_classes, values.image_size, values.channels)
        if values.num_classes is not None:
            raise ConfigError("--num_classes is for --model; the config sets num_classes "
                              "(override it with --config.num_classes=N)")
        if values.config is not None:
            config = values.config
        else:
            from vision_jax.training.loop import load_workdir_config

            config = load_workdir_config(values.workdir)
        return summarize_config(config, values.image_size, values.channels)
    except ValueError as error:  # bad flag values (summarize's own checks)
        raise ConfigError(str(error)) from None
    except TypeError as error:  # a model option the model does not take
        raise ConfigError(f"config.model: {error}") from None


def _define_flags() -> None:
    # Defined only when run as a script, so that importing `summarize` registers no global flags.
    from absl import flags
    from ml_collections import config_flags

    flags.DEFINE_string("model", None, "registered model name, e.g. resnet50")
    config_flags.DEFINE_config_file("config", None, "a training config file[:arg]: show the "
                                    "model it trains (its num_classes and image_size)")
    flags.DEFINE_string("workdir", None, "a directory a training run wrote: show its model")
    flags.DEFINE_integer("num_classes", None, "number of output classes (--model; default 1000)")
    flags.DEFINE_integer("image_size", None, "square input side (default: the config's, the "
                         "model's, or 224)")
    flags.DEFINE_integer("channels", None, "input channels (default: the config's, the "
                         "model's, or 3)")
    flags.DEFINE_bool("json", False, "print one JSON object instead of the table")


if __name__ == "__main__":
    from absl import app

    from vision_jax.cli import parse_flags

    _define_flags()
    app.run(_main, flags_parser=parse_flags)
