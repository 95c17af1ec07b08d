"""Run a trained model on image files.

    python -m vision_jax.predict --workdir runs/mnist --images 'photos/*.png' [--out DIR]

Loads the run's config and latest checkpoint, preprocesses each image the way
evaluation does, and lets the task write its outputs (classification: top-5
JSON; segmentation: mask and overlay PNGs; detection: JSON boxes and a PNG
with them drawn) into `--out` (default `<workdir>/predictions`).
"""

from __future__ import annotations

import glob
import os

from absl import app, flags
from etils import epath


def _define_flags() -> None:
    # Defined only when this module is the program, so that importing its functions (tests,
    # other tools) beside another entry point does not clash in absl's global flag registry.
    flags.DEFINE_string("workdir", None, "A directory a training run wrote.")
    flags.DEFINE_multi_string("images", None, "Image files, directories or glob patterns.")
    flags.DEFINE_string("out", None, "Output directory (default <workdir>/predictions).")
    flags.DEFINE_integer("batch_size", 0, "Images per step (default: a multiple of the device "
                         "count near 32).")
    flags.mark_flags_as_required(["workdir", "images"])

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


def expand_images(patterns: list[str]) -> list[str]:
    """Files named by paths, directories (their images) and glob patterns, sorted."""
    files: list[str] = []
    for pattern in patterns:
        if os.path.isdir(pattern):
            files += [os.path.join(pattern, f) for f in sorted(os.listdir(pattern))
                      if f.lower().endswith(IMAGE_SUFFIXES)]
        else:
            matched = sorted(glob.glob(pattern))
            if not matched:
                raise FileNotFoundError(f"--images {pattern!r} matches no file")
            files += matched
    return files


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


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from vision_jax.cli import start_process

    start_process()
    import jax
    import numpy as np

    from vision_jax.cli import user_errors_exit
    from vision_jax.training import loop

    with user_errors_exit():
        # The images are read first: a bad path fails before the model is built.
        paths = expand_images(flags.FLAGS.images)
        raw = load_images(paths)
        exp, state = loop.restore_experiment(flags.FLAGS.workdir)
    batch = flags.FLAGS.batch_size or max(jax.device_count(), 32 // jax.device_count()
                                * jax.device_count())
    inputs = preprocess(exp.config, exp.info, raw)
    outputs = []
    for start in range(0, len(inputs), batch):
        chunk = inputs[start:start + batch]
        padded = np.concatenate([chunk, np.zeros((batch - len(chunk), *chunk.shape[1:]),
                                                 chunk.dtype)])
        result = exp.predict_step(state, exp.global_batch({"image": padded})["image"])
        real = len(chunk)
        outputs.append(jax.tree.map(lambda x, real=real: np.asarray(x)[:real], result))
    outputs = jax.tree.map(lambda *xs: np.concatenate(xs), *outputs)
    out_dir = exp.workdir / "predictions" if not flags.FLAGS.out else epath.Path(flags.FLAGS.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [os.path.basename(p) for p in paths]
    exp.task.write_predictions(raw, outputs, names, out_dir)
    print(f"wrote predictions for {len(paths)} image(s) to {out_dir}")


if __name__ == "__main__":
    from vision_jax.cli import parse_flags

    _define_flags()
    app.run(main, flags_parser=parse_flags)
