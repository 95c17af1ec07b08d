"""The five explain verbs: each computes its maps for a restored run and writes PNGs into
``out_dir`` plus ``<verb>.json`` with the numbers behind them. Every function returns that
JSON object, so tests and callers read the figures without parsing files."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from etils import epath
from PIL import Image

from vision_jax.explain import ascent, gradcam, layers, saliency
from vision_jax.explain.workdir import Run
from vision_jax.viz.cam import overlay_heatmap
from vision_jax.viz.filters import tile_mosaic
from vision_jax.viz.images import to_uint8_rgb


def _save(pixels: np.ndarray, out_dir: str, name: str) -> str:
    path = epath.Path(out_dir, name)
    with path.open("wb") as f:
        Image.fromarray(to_uint8_rgb(pixels)).save(f, format="PNG")
    return os.fspath(path)


def _write_json(out_dir: str, verb: str, record: dict) -> dict:
    with epath.Path(out_dir, f"{verb}.json").open("w") as f:
        json.dump(record, f, indent=1)
    return record


def _stem(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _grid(maps: np.ndarray) -> np.ndarray:
    """(h, w, C) channels -> one grey mosaic in [0, 1], each channel min-max scaled, 1px gaps
    white; a dead (constant) channel is black."""
    tiles = np.moveaxis(np.asarray(maps, np.float64), -1, 0)
    low = tiles.min(axis=(1, 2), keepdims=True)
    span = tiles.max(axis=(1, 2), keepdims=True) - low
    tiles = np.where(span > 0, (tiles - low) / np.where(span > 0, span, 1.0), 0.0)
    return np.nan_to_num(tile_mosaic(tiles), nan=1.0)


def _safe(name: str) -> str:
    return name.replace("/", "__")


def activations(run: Run, paths: Sequence[str], images: list, out_dir: str,
                layer_names: Sequence[str] = ()) -> dict:
    """Every channel of every spatial layer (or of ``layer_names``), one grid per layer and
    image, and the fraction of zero (and of non-positive) activations per layer."""
    inputs, _ = run.to_input(images)
    outputs = jax.jit(lambda v, x: layers.read_layers(run.model, v, x, spatial_only=True))(
        run.variables, inputs)
    # jit returns dicts with sorted keys: put the layers back in the order they are called.
    names = [name for name in layers.layer_shapes(run.model, run.variables, inputs.shape)
             if name in outputs]
    for name in layer_names:
        layers.check_layer(name, names)
    names = list(layer_names) or names
    record = {"layers": {}}
    for name in names:
        values = np.asarray(outputs[name], np.float32)
        for path, value in zip(paths, values, strict=True):
            _save(_grid(value), out_dir, f"{_stem(path)}_{_safe(name)}.png")
        # A conv's output is read before its ReLU: the non-positive fraction is what the
        # ReLU zeroes; pool and block outputs come after one, so both fractions agree there.
        record["layers"][name] = {
            "shape": list(values.shape[1:]),
            "zero_fraction": float(np.mean(values == 0)),
            "nonpositive_fraction": float(np.mean(values <= 0)),
        }
    return _write_json(out_dir, "activations", record)


def filters(run: Run, layer: str, channels: Sequence[int], out_dir: str, *, steps: int = 100,
            step_size: float = 0.05, seed: int = 0) -> dict:
    """Gradient-ascent filter visualisation of ``channels`` of ``layer``: one PNG per channel
    and a mosaic, shown as the course does (std 1, then a sigmoid)."""
    shape = (run.image_size, run.image_size, run.channels)
    known = layers.spatial_layers(run.model, run.variables, (1, *shape))
    layers.check_layer(layer, known)
    depth = layers.layer_shapes(run.model, run.variables, (1, *shape))[layer][-1]
    bad = [c for c in channels if not 0 <= c < depth]
    if bad:
        from vision_jax.errors import ConfigError

        raise ConfigError(f"--channels {bad[0]} is out of range: layer {layer} has {depth} "
                          f"channels (0..{depth - 1})")
    run_ascent = ascent.filter_ascent_fn(run.model, layer, shape, steps=steps,
                                         step_size=step_size)
    found, start, end = run_ascent(run.variables, jnp.asarray(channels, jnp.int32),
                                   jax.random.key(seed))
    shown = np.asarray(ascent.sigmoid_display(found))
    for channel, image in zip(channels, shown, strict=True):
        _save(image, out_dir, f"{_safe(layer)}_channel{channel}.png")
    mosaic = np.nan_to_num(tile_mosaic(shown, gap=2), nan=1.0)
    _save(mosaic, out_dir, f"{_safe(layer)}.png")
    start, end = np.asarray(start), np.asarray(end)
    return _write_json(out_dir, "filters", {
        "layer": layer, "steps": steps, "channels": list(map(int, channels)),
        "start_mean": start.tolist(), "end_mean": end.tolist(),
        "gain": [float(e / s) if s > 0 else None for s, e in zip(start, end, strict=True)],
    })


def dream(run: Run, path: str, image: np.ndarray, layer: str, channels: Sequence[int],
          out_dir: str, *, steps: int = 50, octaves: int = 3, step_size: float = 0.01) -> dict:
    """Deep Dream of one image, at its own size: the dreamed PNG and the objective per
    octave and step."""
    inputs, _ = run.to_input([image], keep_size=True)
    # Names are looked up at the training size: a classifier may only take that one.
    known = layers.spatial_layers(run.model, run.variables,
                                  (1, run.image_size, run.image_size, run.channels))
    layers.check_layer(layer, known)
    dreamed, history = ascent.deep_dream(run.model, run.variables, jnp.asarray(inputs), layer,
                                         channels, steps=steps, octaves=octaves,
                                         step_size=step_size)
    _save(run.to_display(dreamed)[0], out_dir, f"{_stem(path)}_dream.png")
    return _write_json(out_dir, "dream", {
        "layer": layer, "channels": list(map(int, channels)), "steps": steps,
        "octaves": octaves, "objective": history,
    })


def _class_list(run: Run, count: int, class_index: int | None) -> jax.Array:
    return jnp.full((count,), -1 if class_index is None else class_index, jnp.int32)


def _class_name(run: Run, index: int) -> str:
    return run.class_names[index] if run.class_names and index < len(run.class_names) \
        else str(index)


def gradcam_verb(run: Run, paths: Sequence[str], images: list, out_dir: str,
                 layer: str | None = None, class_index: int | None = None,
                 alpha: float = 0.4) -> dict:
    """Grad-CAM overlays (one PNG per image) at ``layer`` (default: the last spatial one)."""
    inputs, shown = run.to_input(images)
    known = layers.spatial_layers(run.model, run.variables, inputs.shape)
    layer = layers.check_layer(layer, known) if layer else known[-1]
    result = gradcam.explain_gradcam(run.model, run.variables, inputs, layer,
                                     _class_list(run, len(inputs), class_index))
    heatmaps = np.asarray(result["heatmaps"])
    classes = np.asarray(result["classes"])
    # The argmax cell's centre, in pixels of the model input.
    peaks = np.asarray(result["peaks"]) * np.asarray(inputs.shape[1:3])
    record = {"layer": layer, "images": []}
    for path, image, heatmap, cls, peak in zip(paths, shown, heatmaps, classes, peaks,
                                               strict=True):
        _save(overlay_heatmap(image, heatmap, alpha=alpha), out_dir,
              f"{_stem(path)}_gradcam.png")
        record["images"].append({"image": path, "class": int(cls),
                                 "class_name": _class_name(run, int(cls)),
                                 "peak_yx": [int(peak[0]), int(peak[1])]})
    return _write_json(out_dir, "gradcam", record)


def saliency_verb(run: Run, paths: Sequence[str], images: list, out_dir: str,
                  class_index: int | None = None, samples: int = 16, noise: float = 0.15,
                  seed: int = 0) -> dict:
    """The plain input gradient and SmoothGrad, side by side with the image, per image."""
    inputs, shown = run.to_input(images)
    wanted = _class_list(run, len(inputs), class_index)
    key = jax.random.key(seed)
    plain, classes = saliency.saliency_fn(run.model)(run.variables, inputs, wanted, key)
    smooth, _ = saliency.saliency_fn(run.model, samples=samples, noise=noise)(
        run.variables, inputs, wanted, key)
    record = {"samples": samples, "noise": noise, "images": []}
    for path, image, grad_map, smooth_map, cls in zip(paths, shown, np.asarray(plain),
                                                      np.asarray(smooth), np.asarray(classes),
                                                      strict=True):
        panels = [to_uint8_rgb(image)] + [to_uint8_rgb(m / m.max() if m.max() > 0 else m)
                                          for m in (grad_map, smooth_map)]
        gap = np.full((image.shape[0], 2, 3), 255, np.uint8)
        _save(np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1), out_dir,
              f"{_stem(path)}_saliency.png")
        record["images"].append({"image": path, "class": int(cls),
                                 "class_name": _class_name(run, int(cls))})
    return _write_json(out_dir, "saliency", record)


def weights(run: Run, layer: str | None, out_dir: str) -> dict:
    """The kernel weights of a conv layer (default: the first) as a mosaic
    (`viz.filters.plot_conv_filters`), for ``filters --weights``."""
    from vision_jax.viz.filters import plot_conv_filters

    kernels = {}
    _collect_kernels(run.variables["params"], (), kernels)
    if not kernels:
        from vision_jax.errors import ConfigError

        raise ConfigError("filters --weights: this model has no 4-D (HWIO) conv kernel")
    if layer:
        layers.check_layer(layer, list(kernels))
    name = layer or next(iter(kernels))
    plot_conv_filters(kernels[name], os.path.join(out_dir, f"{_safe(name)}_weights.png"))
    # Its own file: `filters.json` is the ascent's record, which a mosaic must not replace.
    return _write_json(out_dir, "weights", {"layer": name, "kernel_shape":
                                            list(kernels[name].shape)})


def _collect_kernels(tree, prefix: tuple[str, ...], out: dict) -> None:
    for key, value in tree.items():
        if hasattr(value, "items"):
            _collect_kernels(value, (*prefix, key), out)
        elif key == "kernel" and getattr(value, "ndim", 0) == 4:
            out["/".join(prefix)] = np.asarray(value)
