"""Run a trained model on image files.

    python -m vision_jax.predict --workdir runs/mnist --images 'photos/*.png' [--out DIR]
        [--output preds.parquet] [--features LAYER] [--explain gradcam] [--show 10]

Loads the run's config and latest checkpoint, preprocesses each image the way
evaluation does, and lets the task write its outputs (classification: top-5 -- or every
class when there are fewer -- JSON; multi-label: every label's probability and the labels
at or above the run's saved thresholds; segmentation: mask and overlay PNGs; detection: JSON
boxes and a PNG with them drawn) into `--out` (default `<workdir>/predictions`). The first
`--show` predictions are printed, with where the files went.

Images are files, directories (their image files) or glob patterns, given to `--images`
(repeatable) or after the flags: an unquoted pattern the shell expanded into many paths
works too. Each image is named in the outputs by its path relative to the deepest folder
holding all the images (`display_names`): files of one folder keep their file names, and
`a/x.png` and `b/x.png` stay apart; per-image files go to the same relative place in `--out`.

- `--output preds.parquet`: a Parquet table (pyarrow) with the image, the predicted label,
  the top-k, and every class's probability as float32 (`predict_writers.probability_table`).
- `--features LAYER`: the layer's output averaged over its positions, to `--output` (default
  `<out>/features.parquet`), one float32 vector per image. Layers are named as
  `python -m vision_jax.summary --workdir W` prints them.
- `--explain gradcam`: a Grad-CAM overlay per image (`<stem>_gradcam.png`, at the model's
  input size) for the predicted class, at the last spatial layer, and `gradcam.json`.
"""

from __future__ import annotations

import glob
import os

from absl import app, flags
from etils import epath

from vision_jax.errors import ConfigError


def _define_flags() -> None:
    # Defined only when this module is the program, so that importing its functions (tests,
    # other tools) beside another entry point does not clash in absl's global flag registry.
    flags.DEFINE_string("workdir", None, "A directory a training run wrote.")
    flags.DEFINE_multi_string("images", None, "Image files, directories or glob patterns "
                              "(also accepted as arguments after the flags).")
    flags.DEFINE_string("out", None, "Output directory (default <workdir>/predictions).")
    flags.DEFINE_integer("batch_size", 0, "Images per step (default: a multiple of the device "
                         "count near 32).")
    flags.DEFINE_string("output", None, "A .parquet file: every image's probabilities (or, "
                        "with --features, its pooled features).")
    flags.DEFINE_string("features", None, "A layer name (as vision_jax.summary prints it): "
                        "write its globally average-pooled output to Parquet instead.")
    flags.DEFINE_enum("explain", None, ["gradcam"], "Also write an explanation per image.")
    flags.DEFINE_integer("show", 10, "Predictions printed to the screen.", lower_bound=0)
    flags.mark_flags_as_required(["workdir"])

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def expand_images(patterns: list[str]) -> list[str]:
    """Files named by paths, directories (their images) and glob patterns, each pattern's
    sorted, a file named twice kept once. A pattern that names no image is an error."""
    if not patterns:
        raise ConfigError("no images given: pass --images 'photos/*.png' (quote a pattern) "
                          "or image paths after the flags")
    files: list[str] = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            found = [os.path.join(pattern, f) for f in sorted(os.listdir(pattern))
                     if f.lower().endswith(IMAGE_SUFFIXES)]
            if not found:
                raise FileNotFoundError(f"--images {pattern!r} is a directory with no image "
                                        f"file ({', '.join(IMAGE_SUFFIXES)})")
        elif os.path.isfile(pattern):  # as named: "[1]" in a file name is no glob class
            found = [pattern]
        else:
            found = sorted(p for p in glob.glob(pattern) if os.path.isfile(p))
            if not found:
                raise FileNotFoundError(f"--images {pattern!r} matches no file")
        files += found
    seen: set[str] = set()
    unique = []
    for path in files:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def display_names(paths: list[str]) -> list[str]:
    """Each path relative to the deepest folder that holds all of them: the file name when
    they share one folder, ``a/x.png`` and ``b/x.png`` when two folders have an ``x.png``.
    Unique for distinct files, so the outputs never mix two images up."""
    folders = [os.path.dirname(os.path.abspath(p)) for p in paths]
    root = os.path.commonpath(folders) if folders else ""
    return [os.path.relpath(os.path.abspath(p), root) for p in paths]


def load_images(paths: list[str]) -> list:
    """Decoded uint8 HWC arrays (grey or RGB, as the file is); a file that cannot be read is
    an error naming it."""
    from PIL import Image, UnidentifiedImageError

    from vision_jax.data.folder import ImageDecodeError, channels_of_mode, decode_image

    images = []
    for path in paths:
        try:
            with Image.open(path) as im:
                channels = channels_of_mode(im.mode)
            images.append(decode_image(path, channels))
        except (UnidentifiedImageError, OSError, ImageDecodeError) as e:
            raise FileNotFoundError(f"--images: {path} is not a readable image ({e})") from None
    return images


def preprocess(config, info, images: list):
    """The data pipeline's host path (channels, resize, stack) for raw images: a uint8 batch;
    the predict step normalises on device, as it does for evaluation."""
    from vision_jax.data import transforms

    channels = config.get("image_channels", 0) or info.num_channels or 3
    prepared = [transforms.prepare({"image": image}, config.image_size, channels)
                for image in images]
    return transforms.stack(prepared)["image"]


def use_saved_thresholds(task, workdir: str, prefixes: list[str]) -> str | None:
    """A multi-label task decides at the thresholds its run saved (``<prefix>_thresholds.json``,
    best F1 on the eval split when the run chose them), not the config's defaults. Returns the
    file used; a task without per-label thresholds is left as it is."""
    if not (hasattr(task, "thresholds") and hasattr(task, "label_names")):
        return None
    from vision_jax.tasks.multilabel import load_thresholds

    for prefix in prefixes:
        path = os.path.join(workdir, f"{prefix}_thresholds.json")
        if os.path.exists(path):
            try:
                task.thresholds = load_thresholds(path, task.label_names)
            except (ValueError, KeyError) as e:
                raise ConfigError(f"{path}: {e}") from None
            return path
    return None


def _class_names(exp) -> list[str]:
    task = exp.task
    names = getattr(task, "class_names", None) or getattr(task, "label_names", None) or \
        exp.info.class_names or []
    return list(names)


def _batches(inputs, batch: int):
    """(padded chunk, number of real images) over ``inputs``: every step sees one shape."""
    import numpy as np

    for start in range(0, len(inputs), batch):
        chunk = inputs[start:start + batch]
        yield np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]),
                                              chunk.dtype)]), len(chunk)


def _check_layer(name: str, known: list[str]) -> None:
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, known, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(known)}"
        raise ConfigError(f"--features {name!r} is not a layer of this model; {hint} "
                          "(python -m vision_jax.summary --workdir W lists them)")


def pooled_features(exp, variables, inputs, layer: str, batch: int):
    """``layer``'s output for every (uint8, model-size) input, averaged over its spatial
    positions: (N, channels) float32. The model runs only up to the layer."""
    import jax
    import numpy as np

    from vision_jax.augment.device import normalize
    from vision_jax.explain import layers

    shapes = layers.layer_shapes(exp.model, variables, (1, *inputs.shape[1:]))
    _check_layer(layer, list(shapes))
    read = jax.jit(lambda v, x: layers.layer_output(exp.model, v, x, layer))
    mean, std = exp.config.normalize.mean, exp.config.normalize.std
    pooled = []
    for chunk, real in _batches(inputs, batch):
        out = np.asarray(read(variables, normalize(chunk, mean, std)), np.float32)[:real]
        pooled.append(out.mean(axis=tuple(range(1, out.ndim - 1))) if out.ndim > 2 else out)
    return np.concatenate(pooled), shapes[layer][1:]


def gradcam_maps(exp, variables, inputs, batch: int):
    """Grad-CAM heatmaps (N, S, S) in [0, 1] at the last spatial layer, for each input's
    predicted class, and those classes."""
    import jax.numpy as jnp
    import numpy as np

    from vision_jax.augment.device import normalize
    from vision_jax.explain import gradcam, layers

    layer = layers.last_spatial_layer(exp.model, variables, (1, *inputs.shape[1:]))
    explain = gradcam.grad_cam_fn(exp.model, layer)
    wanted = jnp.full((batch,), -1, jnp.int32)
    mean, std = exp.config.normalize.mean, exp.config.normalize.std
    maps, classes = [], []
    for chunk, real in _batches(inputs, batch):
        cams, _, chosen = explain(variables, jnp.asarray(normalize(chunk, mean, std)), wanted)
        maps.append(np.asarray(gradcam.upsample(cams, inputs.shape[1:3]))[:real])
        classes.append(np.asarray(chosen)[:real])
    return np.concatenate(maps), np.concatenate(classes)


def main(argv: list[str]) -> None:
    from vision_jax.cli import start_process

    start_process()
    import jax
    import numpy as np

    from vision_jax import predict_writers as writers
    from vision_jax.cli import user_errors_exit
    from vision_jax.training import loop

    values = flags.FLAGS
    with user_errors_exit():
        # The images are read first: a bad path fails before the model is built. Arguments
        # after the flags are images too: an unquoted glob the shell expanded.
        paths = expand_images(list(values.images or []) + argv[1:])
        names = display_names(paths)
        raw = load_images(paths)
        if values.output is not None and not values.output.endswith(".parquet"):
            raise ConfigError(f"--output {values.output!r} must end in .parquet (the one "
                              "format it writes)")
        exp, state = loop.restore_experiment(values.workdir)
        thresholds_file = use_saved_thresholds(exp.task, values.workdir,
                                               [e.prefix for e in exp.evaluators])
    batch = flags.FLAGS.batch_size or max(jax.device_count(), 32 // jax.device_count()
                                * jax.device_count())
    inputs = preprocess(exp.run.data, exp.info, raw)
    outputs = []
    for start in range(0, len(inputs), batch):
        chunk = inputs[start:start + batch]
        padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]),
                                                 chunk.dtype)])
        result = exp.predict_step(state, exp.global_batch({"image": padded})["image"])
        real = len(chunk)
        outputs.append(jax.tree.map(lambda x, real=real: np.asarray(x)[:real], result))
    outputs = jax.tree.map(lambda *xs: np.concatenate(xs), *outputs)
    out_dir = epath.Path(values.out) if values.out else exp.workdir / "predictions"
    for folder in sorted({os.path.dirname(name) for name in names}):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    records = exp.task.write_predictions(raw, outputs, names, out_dir)
    written = [f"predictions: {out_dir / 'predictions.json'}"]
    if thresholds_file:
        written.append(f"labels at the thresholds of {thresholds_file}")
    with user_errors_exit():
        variables = state.variables()
        if values.features:
            features, shape = pooled_features(exp, variables, inputs, values.features, batch)
            path = values.output or os.path.join(out_dir, "features.parquet")
            writers.write_parquet(writers.feature_table(names, features, values.features,
                                                        shape), path)
            written.append(f"{values.features} features ({features.shape[1]} per image): "
                           f"{path}")
        elif values.output:
            table = writers.probability_table(records, outputs, _class_names(exp),
                                              exp.run.task)
            written.append(f"probabilities: {writers.write_parquet(table, values.output)}")
        if values.explain == "gradcam":
            if not (isinstance(outputs, np.ndarray) and outputs.ndim == 2):
                raise ConfigError(f"--explain gradcam explains a class score per image; this "
                                  f"run's task (config.task={exp.run.task!r}) predicts none")
            maps, classes = gradcam_maps(exp, variables, inputs, batch)
            writers.write_gradcam(names, inputs, maps, classes, _class_names(exp), out_dir)
            written.append(f"Grad-CAM overlays: {out_dir}/*_gradcam.png, gradcam.json")
    if exp.is_main:
        table = writers.screen_table(records, values.show)
        if table:
            print(table)
        print(f"{len(paths)} image(s); " + "; ".join(written))


if __name__ == "__main__":
    from vision_jax.cli import parse_flags

    _define_flags()
    app.run(main, flags_parser=parse_flags)
