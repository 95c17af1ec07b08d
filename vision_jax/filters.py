"""The hand-made filter gallery, the course's edge-detection case study as a command.

    python -m vision_jax.filters IMAGE --filters sobel_x,laplacian,edges8 --out DIR

Each named kernel of `vision_jax.ops.filters` is applied to the image (scaled to [0, 1]) with
`vision_jax.ops.conv2d`: stride 1, SAME padding, cross-correlation as a CNN layer does
(``--flip`` for true convolution). A 2-D kernel filters the channel mean; ``edges8`` gives
eight maps. Responses are shown as the course shows them: standardised (mean 0, std 1),
then a sigmoid, so 0.5 grey is "no response". Writes ``DIR/<filter>.png`` (``edges8`` as
``edges8_<angle>.png`` and a contact sheet ``edges8.png``) and ``DIR/filters.json`` with
each map's raw mean, std, min and max.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

from vision_jax import ops
from vision_jax.errors import ConfigError
from vision_jax.ops import filters as kernels


def filter_image(image: np.ndarray, name: str, *, flip_kernel: bool = False) -> np.ndarray:
    """(H, W, C) float image -> (H, W, K) response of kernel ``name`` (K = 8 for edges8)."""
    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ValueError(f"filter_image: image must be (H, W, C), got shape {image.shape}")
    weights = kernels.kernel(name)
    if weights.ndim == 2:
        weights = kernels.as_hwio(weights, image.shape[-1])
    elif weights.shape[2] != image.shape[-1]:  # edges8 is built for RGB; a grey image: mean
        weights = np.broadcast_to(weights.mean(axis=2, keepdims=True) * 3 / image.shape[-1],
                                  (*weights.shape[:2], image.shape[-1], weights.shape[3]))
    out = ops.conv2d(jnp.asarray(image)[None], jnp.asarray(weights), strides=(1, 1),
                     padding="SAME", impl="lax", flip_kernel=flip_kernel)
    return np.asarray(out[0])


def sigmoid_display(response: np.ndarray) -> np.ndarray:
    """(H, W, K) -> same shape in (0, 1): each map standardised, then a sigmoid."""
    response = np.asarray(response, np.float64)
    mean = response.mean(axis=(0, 1), keepdims=True)
    std = response.std(axis=(0, 1), keepdims=True)
    return np.asarray(jax.nn.sigmoid((response - mean) / np.where(std > 0, std, 1.0)))


def read_image(path: str) -> np.ndarray:
    """An image file as (H, W, C) float32 in [0, 1] (grey stays 1 channel, else RGB)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im if im.mode in ("L", "RGB") else im.convert("RGB")
            array = np.asarray(im, np.float32) / 255.0
    except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
        raise FileNotFoundError(f"IMAGE {path} is not a readable image file ({e})") from None
    return array[..., None] if array.ndim == 2 else array


def write_gallery(image: np.ndarray, names: list[str], out_dir: str,
                  flip_kernel: bool = False) -> dict:
    """Filters ``image`` with every kernel in ``names``; writes PNGs and filters.json."""
    from PIL import Image

    from vision_jax.viz.filters import tile_mosaic

    os.makedirs(out_dir, exist_ok=True)
    stats = {}
    for name in names:
        response = filter_image(image, name, flip_kernel=flip_kernel)
        shown = np.round(sigmoid_display(response) * 255).astype(np.uint8)
        labels = ([f"{name}_{angle:03d}" for angle in kernels.EDGE_ANGLES]
                  if response.shape[-1] > 1 else [name])
        for index, label in enumerate(labels):
            Image.fromarray(shown[..., index]).save(os.path.join(out_dir, f"{label}.png"))
            channel = response[..., index]
            stats[label] = {"mean": float(channel.mean()), "std": float(channel.std()),
                            "min": float(channel.min()), "max": float(channel.max())}
        if len(labels) > 1:
            sheet = tile_mosaic(np.moveaxis(shown, -1, 0).astype(np.float64), gap=2)
            sheet = np.nan_to_num(sheet, nan=255.0).astype(np.uint8)
            Image.fromarray(sheet).save(os.path.join(out_dir, f"{name}.png"))
    with open(os.path.join(out_dir, "filters.json"), "w") as f:
        json.dump({"filters": names, "flip_kernel": flip_kernel, "maps": stats}, f, indent=1)
    return stats


def parse_names(text: str) -> list[str]:
    """'sobel_x,laplacian' -> checked names; an unknown one is a ConfigError naming --filters."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"--filters is empty; choose from {', '.join(kernels.names())}")
    for name in names:
        try:
            kernels.kernel(name)
        except ConfigError as e:
            raise ConfigError(f"--filters: {e}") from None
    return names


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m vision_jax.filters",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("image", help="image file (PNG, JPEG, ...)")
    parser.add_argument("--filters", default="sobel_x,sobel_y,laplacian,edges8",
                        help=f"comma-separated, from: {', '.join(kernels.names())}")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--flip", action="store_true",
                        help="true convolution (kernel rotated 180 degrees)")
    args = parser.parse_args(argv)
    try:
        names = parse_names(args.filters)
        image = read_image(args.image)
    except (ConfigError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    write_gallery(image, names, args.out, flip_kernel=args.flip)
    print(f"wrote {len(names)} filter(s) of {args.image} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
