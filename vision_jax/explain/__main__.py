"""python -m vision_jax.explain VERB --workdir W [options]: look inside a trained run.

    activations --images A.png [B.png ...] [--layers conv1,pool1]
    filters     --layer L --channels 0,1,2 [--steps 100]       (gradient ascent)
    filters     --weights [--layer L]                          (the kernels themselves)
    dream       --image A.png --layer L --channels 42 [--steps 50 --octaves 3]
    gradcam     --images A.png ... [--layer L] [--class K]
    saliency    --images A.png ... [--class K] [--samples 16]

PNGs and ``<verb>.json`` (``weights.json`` for ``filters --weights``, so the mosaic keeps the
ascent's record) go to ``--out`` (default ``W/explain/<verb>``). Layer names are the
ones ``python -m vision_jax.summary --model NAME`` prints. Bad input is one line
(``error: ...``, exit status 2).
"""

from __future__ import annotations

import argparse
import os
import sys

from etils import epath

VERBS = ("activations", "filters", "dream", "gradcam", "saliency")


def _int_list(text: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        message = f"{text!r} is not a comma-separated list of integers"
        raise argparse.ArgumentTypeError(message) from None


def parser() -> argparse.ArgumentParser:
    cli = argparse.ArgumentParser(prog="python -m vision_jax.explain",
                                  description=__doc__.split("\n\n")[0])
    cli.add_argument("verb", choices=VERBS)
    cli.add_argument("--workdir", required=True, help="a directory a training run wrote")
    cli.add_argument("--out", help="output directory (default <workdir>/explain/<verb>)")
    cli.add_argument("--images", nargs="+", help="image files, directories or glob patterns")
    cli.add_argument("--image", help="dream: the image to dream on")
    cli.add_argument("--layer", help="layer name (as vision_jax.summary prints it)")
    cli.add_argument("--layers", default="", help="activations: comma-separated layer names")
    cli.add_argument("--channels", type=_int_list, help="comma-separated channel indices")
    cli.add_argument("--class", dest="class_index", type=int, help="class to explain "
                     "(default: the predicted one)")
    cli.add_argument("--steps", type=int, help="ascent steps (filters 100, dream 50)")
    cli.add_argument("--octaves", type=int, default=3, help="dream: number of scales")
    cli.add_argument("--samples", type=int, default=16, help="saliency: SmoothGrad samples")
    cli.add_argument("--weights", action="store_true",
                     help="filters: draw the layer's kernel weights instead of gradient ascent")
    return cli


def _require(args: argparse.Namespace, *names: str) -> None:
    from vision_jax.errors import ConfigError

    for name in names:
        if not getattr(args, name):
            raise ConfigError(f"{args.verb} needs --{name}")


def run_verb(args: argparse.Namespace) -> dict:
    """Restores the run and runs ``args.verb``; returns the JSON record it wrote."""
    from vision_jax.explain import verbs, workdir

    out_dir = args.out or os.path.join(args.workdir, "explain", args.verb)
    paths = []
    if args.verb in ("activations", "gradcam", "saliency"):
        _require(args, "images")
        paths = workdir.expand_images(args.images)
    elif args.verb == "dream":
        _require(args, "image", "layer", "channels")
        paths = workdir.expand_images([args.image], "--image")[:1]
    elif not args.weights:
        _require(args, "layer", "channels")
    images = [workdir.load_image(path) for path in paths]  # bad files fail before restoring
    run = workdir.restore(args.workdir)
    epath.Path(out_dir).mkdir(parents=True, exist_ok=True)
    if args.verb == "activations":
        names = [name for name in args.layers.split(",") if name]
        return verbs.activations(run, paths, images, out_dir, names)
    if args.verb == "filters" and args.weights:
        return verbs.weights(run, args.layer, out_dir)
    if args.verb == "filters":
        return verbs.filters(run, args.layer, args.channels, out_dir, steps=args.steps or 100)
    if args.verb == "dream":
        return verbs.dream(run, paths[0], images[0], args.layer, args.channels, out_dir,
                           steps=args.steps or 50, octaves=args.octaves)
    if args.verb == "gradcam":
        return verbs.gradcam_verb(run, paths, images, out_dir, args.layer, args.class_index)
    return verbs.saliency_verb(run, paths, images, out_dir, args.class_index,
                               samples=args.samples)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs every restore at INFO
    from vision_jax.cli import USER_ERRORS
    from vision_jax.errors import ConfigError

    try:
        record = run_verb(args)
    except (*USER_ERRORS, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out_dir = args.out or os.path.join(args.workdir, "explain", args.verb)
    record_name = "weights" if args.weights else args.verb  # verbs.weights' own record
    print(f"explain {args.verb}: wrote {out_dir}/{record_name}.json and "
          f"{sum(p.name.endswith('.png') for p in epath.Path(out_dir).iterdir())} PNG(s)")
    del record
    return 0


if __name__ == "__main__":
    sys.exit(main())
