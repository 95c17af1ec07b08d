"""Timing of `explain gradcam` and the filter gallery, and Grad-CAM's localisation rate.

    python -m benchmarks.explain time [--image_size 224] [--batch 1]
    python -m benchmarks.explain localise --workdir W [--data_dir D] [--layer L]

``time``: a randomly initialised ResNet-50 (the cost does not depend on the weights) at
``image_size``; the jitted Grad-CAM function (forward, backward to the last stage, weighted
sum) and the filter gallery's ``sobel_x,laplacian,edges8`` on one RGB image, each compiled
first and then timed as a median of repeats (`benchmarks.timing.median_time`). Also the
compile time, which a one-off command pays. Writes benchmarks/results/explain_<backend>.json
and .md.

``localise``: the fraction of the test split of ``builtin:shapes_classification`` whose
Grad-CAM peak (the centre of the map's argmax cell, placed on the image at the centre of
that cell's receptive field: `gradcam.explain_gradcam`'s ``peaks``) falls inside the
object's box, for a run
trained on it, and the run's accuracy on the same images. ``peak_in_box_rate_stretched``
is the argmax pixel of the same maps spread over the whole image instead (``H / h`` pixels
per cell), which misplaces a VALID-padded layer's cells.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import median_time

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def time_explain(image_size: int, batch: int) -> dict:
    from vision_jax import models
    from vision_jax.explain import gradcam, layers
    from vision_jax.filters import filter_image

    model = models.create("resnet50", num_classes=1000)
    shape = (batch, image_size, image_size, 3)
    variables = jax.jit(lambda x: model.init(jax.random.key(0), x, train=False))(
        jnp.zeros(shape))
    images = jax.random.normal(jax.random.key(1), shape)
    layer = layers.last_spatial_layer(model, variables, shape)
    classes = jnp.full((batch,), -1, jnp.int32)
    cam_fn = gradcam.grad_cam_fn(model, layer)
    start = time.perf_counter()
    jax.block_until_ready(cam_fn(variables, images, classes))
    first_call_s = time.perf_counter() - start
    cam = median_time(cam_fn, variables, images, classes, repeats=5, min_repeats=3)
    image = np.random.default_rng(0).uniform(size=(image_size, image_size, 3)).astype(np.float32)
    gallery = {}
    for name in ("sobel_x", "laplacian", "edges8"):
        filter_image(image, name)  # compile
        timing = median_time(lambda name=name: filter_image(image, name), repeats=10)
        gallery[name] = timing.median_s
    device = jax.devices()[0]
    return {
        "suite": "explain", "model": "resnet50", "image_size": image_size, "batch": batch,
        "layer": layer, "gradcam_first_call_s": first_call_s, "gradcam_median_s": cam.median_s,
        "filters_median_s": gallery, "backend": jax.default_backend(),
        "device_kind": device.device_kind, "cpu_count": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0], "jax_version": jax.__version__,
    }


def localise(run_dir: str, data_dir: str | None, layer: str | None) -> dict:
    import tensorflow_datasets as tfds

    from vision_jax.data.sources import prepare_builtin
    from vision_jax.explain import gradcam, workdir

    run = workdir.restore(run_dir)
    builder = prepare_builtin("shapes_classification", data_dir)
    source = tfds.data_source(builder.name, split="test", data_dir=builder.data_dir_root)
    examples = [source[index] for index in range(len(source))]
    images = [np.asarray(example["image"]) for example in examples]
    boxes = np.stack([np.asarray(example["bbox"], np.float32) for example in examples])
    labels = np.array([int(example["label"]) for example in examples])
    inputs, _ = run.to_input(images)
    hits, stretched_hits, correct, used = [], [], [], None
    for start in range(0, len(inputs), 100):
        batch = slice(start, start + 100)
        result = gradcam.explain_gradcam(run.model, run.variables, inputs[batch], layer)
        used = result["layer"]
        hits.append(np.asarray(gradcam.point_in_box(result["peaks"], boxes[batch])))
        # The argmax pixel of the same maps spread over the whole image (H / h pixels per
        # cell), for comparison.
        cams, _, _ = gradcam.grad_cam_fn(run.model, used)(
            run.variables, jnp.asarray(inputs[batch]), result["classes"])
        stretched = gradcam.upsample(cams, inputs.shape[1:3])
        stretched_hits.append(np.asarray(gradcam.peak_in_box(stretched, boxes[batch])))
        correct.append(np.asarray(result["classes"]) == labels[batch])
    hits, correct = np.concatenate(hits), np.concatenate(correct)
    return {"workdir": run_dir, "layer": used, "images": len(inputs),
            "peak_in_box_rate": float(hits.mean()),
            "peak_in_box_rate_stretched": float(np.concatenate(stretched_hits).mean()),
            "peak_in_box_rate_when_correct": float(hits[correct].mean()) if correct.any()
            else None,
            "accuracy": float(correct.mean()),
            # Per true class, named as the dataset names them: where the misses are.
            "peak_in_box_rate_per_class": {
                name: float(hits[labels == index].mean())
                for index, name in enumerate(builder.info.features["label"].names)
                if (labels == index).any()}}


def main() -> None:
    cli = argparse.ArgumentParser(prog="python -m benchmarks.explain")
    cli.add_argument("mode", choices=("time", "localise"))
    cli.add_argument("--image_size", type=int, default=224)
    cli.add_argument("--batch", type=int, default=1)
    cli.add_argument("--workdir")
    cli.add_argument("--data_dir")
    cli.add_argument("--layer")
    args = cli.parse_args()
    if args.mode == "localise":
        print(json.dumps(localise(args.workdir, args.data_dir, args.layer)))
        return
    record = time_explain(args.image_size, args.batch)
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"explain_{record['backend']}")
    with open(f"{path}.json", "w") as f:
        json.dump(record, f, indent=1)
    with open(f"{path}.md", "w") as f:
        f.write(f"| what ({record['model']}, {args.image_size}x{args.image_size}, batch "
                f"{args.batch}, {record['device_kind']}, load {record['load_average_1min']:.1f}) "
                "| seconds |\n|---|---|\n"
                f"| gradcam, first call (compile + run) | {record['gradcam_first_call_s']:.2f} |\n"
                f"| gradcam, median | {record['gradcam_median_s']:.3f} |\n")
        for name, seconds in record["filters_median_s"].items():
            f.write(f"| filter {name}, median | {seconds:.4f} |\n")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
