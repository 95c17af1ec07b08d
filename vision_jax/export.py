"""Export a run's model so it leaves the toolkit: weights plus a JSON model definition.

    python -m vision_jax.export --workdir runs/mnist --format safetensors [--out DIR]
    python -m vision_jax.export --workdir runs/mnist --format keras_h5
    python -m vision_jax.export --workdir runs/mnist --format jax_export

Formats (written to ``--out``, default ``<workdir>/export``):
  * ``safetensors``: ``model.safetensors`` (every variable under its '/'-joined path, e.g.
    ``params/conv1/kernel``; NHWC inputs, HWIO conv kernels, (in, out) dense kernels) and
    ``model.json`` (registry name, model options, input shape, so
    ``vision_jax.models.create(**)`` rebuilds it).
  * ``keras_h5``: the course's "JSON + H5" deliverable, built with Keras: ``model.json``
    (``model.to_json()``), ``model.weights.h5`` (``save_weights``) and a complete legacy
    ``model.h5``, for ``seed_cnn`` and the VGGs without batch norm. The classifier outputs logits
    (no softmax), so the Keras model's outputs equal ours. Needs ``keras`` (any backend).
  * ``jax_export``: ``model.jax_export``, the inference forward pass for batches of
    ``--batch_size`` images serialised by ``jax.export``
    (``jax.export.deserialize(...).call(images)``), and ``model.json``. The batch size is
    fixed because `vision_jax.ops` plans its convolutions from concrete shapes.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import numpy as np
from absl import app, flags
from etils import epath
from flax import traverse_util

from vision_jax import paths
from vision_jax.errors import ConfigError

FORMATS = ("safetensors", "keras_h5", "jax_export")


def _define_flags() -> None:
    # Defined only when this module is the program: other entry points (predict, evaluate)
    # define flags of the same names, and importing this module as a library next to them
    # must not clash in absl's one global flag registry.
    flags.DEFINE_string("workdir", None, "A directory a training run (or "
                        "`python -m vision_jax.weights import`) wrote.")
    flags.DEFINE_enum("format", None, list(FORMATS), "What to write.")
    flags.DEFINE_string("out", None, "Output directory (default <workdir>/export).")
    flags.DEFINE_integer("batch_size", 1, "jax_export: the batch size it takes.")
    flags.mark_flags_as_required(["workdir", "format"])


class ExportError(ConfigError):
    """A model or format that cannot be exported; one line naming the fix."""


def model_definition(config: Any, input_shape: tuple[int, int, int]) -> dict[str, Any]:
    """The JSON model definition: what `vision_jax.models.create` needs, and the input."""
    return {"model_name": config.model_name, "num_classes": int(config.num_classes),
            "model_kwargs": dict(config.model), "input_shape": list(input_shape),
            "input": "NHWC float32 images, scaled to [0, 1] then normalised with "
                     f"mean {list(config.normalize.mean)}, std {list(config.normalize.std)}",
            "layout": "conv kernels HWIO, dense kernels (in, out); flatten order NHWC"}


def export_safetensors(variables: dict[str, Any], definition: dict[str, Any],
                       out_dir: paths.PathLike) -> list[str]:
    """Writes ``model.safetensors`` and ``model.json``; returns the paths."""
    from vision_jax.weights.torch_format import EXTRA_HINT

    try:
        from safetensors.numpy import save
    except ModuleNotFoundError:
        raise ExportError(f"--format safetensors needs the safetensors package: "
                          f"{EXTRA_HINT}") from None
    flat = {path: np.ascontiguousarray(np.asarray(value))
            for path, value in traverse_util.flatten_dict(variables, sep="/").items()}
    weights = epath.Path(out_dir, "model.safetensors")
    weights.write_bytes(save(flat, metadata={"model_name": definition["model_name"]}))
    return [os.fspath(weights), _write_json(definition, out_dir)]


def export_jax(model: Any, variables: dict[str, Any], definition: dict[str, Any],
               out_dir: paths.PathLike, batch_size: int = 1) -> list[str]:
    """Writes the serialised inference function ``model.jax_export`` (for batches of
    ``batch_size``) and ``model.json``."""
    import jax

    height, width, channels = definition["input_shape"]
    definition = {**definition, "jax_export_batch_size": batch_size}
    images = jax.ShapeDtypeStruct((batch_size, height, width, channels), np.float32)
    forward = jax.jit(lambda x: model.apply(variables, x, train=False))
    exported = jax.export.export(forward)(images)
    try:
        import flatbuffers  # noqa: F401 - what Exported.serialize needs
    except ModuleNotFoundError:
        raise ExportError("--format jax_export needs the flatbuffers package: pip install "
                          "'vision_jax[weights]'") from None
    path = epath.Path(out_dir, "model.jax_export")
    path.write_bytes(exported.serialize())
    return [os.fspath(path), _write_json(definition, out_dir)]


def _write_json(definition: dict[str, Any], out_dir: paths.PathLike) -> str:
    path = epath.Path(out_dir, "model.json")
    path.write_text(json.dumps(definition, indent=2) + "\n")
    return os.fspath(path)


def export(workdir: paths.PathLike, fmt: str, out_dir: paths.PathLike | None = None,
           batch_size: int = 1) -> list[str]:
    """Restores ``workdir``'s latest checkpoint and writes it in format ``fmt``."""
    from vision_jax.training import loop, validate

    if fmt not in FORMATS:
        raise ExportError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    exp, state = loop.restore_experiment(workdir)
    config = exp.config
    input_shape = (config.image_size, config.image_size,
                   validate.image_channels(config, exp.info))
    variables = jax_to_numpy(state.variables())
    definition = model_definition(config, input_shape)
    out_dir = paths.as_path(out_dir) if out_dir else exp.workdir / "export"
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        return export_safetensors(variables, definition, out_dir)
    if fmt == "jax_export":
        return export_jax(exp.model, variables, definition, out_dir, batch_size)
    from vision_jax.weights.keras_export import export_keras

    if not paths.is_remote(out_dir):
        return export_keras(config.model_name, dict(config.model), variables, input_shape,
                            os.fspath(out_dir))
    with tempfile.TemporaryDirectory() as local:  # Keras and h5py write local files only
        written = export_keras(config.model_name, dict(config.model), variables,
                               input_shape, local)
        for file in written:
            (out_dir / os.path.basename(file)).write_bytes(epath.Path(file).read_bytes())
    return [os.fspath(out_dir / os.path.basename(file)) for file in written]


def jax_to_numpy(tree: Any) -> Any:
    import jax

    return jax.tree.map(np.asarray, jax.device_get(tree))


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from vision_jax.cli import start_process

    start_process()
    from vision_jax.cli import user_errors_exit
    from vision_jax.weights.convert import config_errors_exit

    with user_errors_exit(), config_errors_exit():
        options = flags.FLAGS
        written = export(options.workdir, options.format, options.out, options.batch_size)
    print("wrote " + ", ".join(written))


if __name__ == "__main__":
    _define_flags()
    app.run(main)
