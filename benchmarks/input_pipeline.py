"""Host input throughput on ImageNet-like JPEGs: how many host cores feed one accelerator.

    python -m benchmarks.input_pipeline [--images 256] [--workers 1] [--legacy_repo /work/main]

Generates ``--images`` 500x375 JPEGs (quality 90, a class-per-folder ``folder:`` dataset),
then times ``make_train_iterator`` for an Inception-style training config (image_size 224,
``random_resized_crop=(0.08, 1.0)``, ``flip=True``, batch 64) with ``--workers`` Grain
worker processes. The host does read -> decode -> resize to 224 -> batch (uint8); the crop
and flip run on the accelerator inside the train step, timed here separately (one jitted
`DevicePreprocess.train` per batch, on this process's default device).

``--legacy_repo`` (a checkout from before on-device augmentation, e.g. main) times that
checkout's host-side chain on the same files and workers, for the side-by-side figure:
decode -> float32 -> resize to 224 -> random zoom (1, 3.5) (today's nearest equivalent of
the random resized crop) -> flip -> normalise -> float32 batch.

Images/s per host core = images/s / worker processes (each worker is one busy core; the
figure assumes the cores are otherwise idle -- say how loaded they were). Cores for one TPU
v4 chip = 2,000 images/s / that. Writes ``<out>/input_pipeline.{json,md}``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
import time

import numpy as np
from absl import app, flags
from PIL import Image

_IMAGES = flags.DEFINE_integer("images", 256, "JPEGs to generate.")
_WORKERS = flags.DEFINE_integer("workers", 1, "Grain worker processes.")
_BATCHES = flags.DEFINE_integer("batches", 12, "Batches timed (after one warm-up batch).")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Batch size.")
_LEGACY = flags.DEFINE_string("legacy_repo", "", "A checkout whose host-side transforms to "
                              "time side by side (vision_jax/data/transforms.py of it).")
_OUT = flags.DEFINE_string("out", "benchmarks/results", "Output directory ('' = print only).")
TPU_V4_IMAGES_PER_S = 2000.0
SIZE = 224


def write_jpegs(root: str, count: int) -> None:
    """`count` 500x375 photos-like JPEGs (smooth colour fields plus noise), two classes."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:375, 0:500].astype(np.float32)
    for i in range(count):
        folder = os.path.join(root, "train", f"class{i % 2}")
        os.makedirs(folder, exist_ok=True)
        phase = rng.random(3) * 6.28
        field = np.stack([np.sin(x / (40 + 17 * c) + y / (55 + 9 * c) + phase[c])
                          for c in range(3)], -1)
        pixels = 127 + 90 * field + rng.normal(0, 12, field.shape)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(
            os.path.join(folder, f"{i:05d}.jpg"), quality=90)


def _config(root: str, workers: int):
    from vision_jax.data import default_data_config

    config = default_data_config()
    config.dataset = f"folder:{root}"
    config.train_split = config.eval_split = "train"
    config.image_size = SIZE
    config.batch_size = _BATCH.value
    config.num_data_workers = workers
    # ImageNet's 1.28M images never fit the host cache: measure reading and decoding.
    config.host_cache_gib = 0.0
    config.normalize.mean = (0.485, 0.456, 0.406)
    config.normalize.std = (0.229, 0.224, 0.225)
    config.augment.flip = True
    config.augment.random_resized_crop = (0.08, 1.0)
    return config


def _time(iterator, batches: int, batch_size: int) -> float:
    next(iterator)  # starts the workers, opens the files
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def time_ours(root: str, workers: int) -> tuple[float, float]:
    """(host images/s, on-device augmentation images/s) of the current pipeline."""
    import jax

    from vision_jax import data as data_lib
    from vision_jax.augment import DevicePreprocess, augment_section

    config = _config(root, workers)
    data = data_lib.data_section(config)
    data_lib.validate_data_config(data)
    iterator = data_lib.make_train_iterator(data, process_index=0, process_count=1)
    try:
        host = _time(iterator, _BATCHES.value, config.batch_size)
        batch = jax.device_put(next(iterator))
    finally:
        iterator.close()
    prep = DevicePreprocess(section=augment_section(config.augment),
                            mean=tuple(config.normalize.mean), std=tuple(config.normalize.std))
    train = jax.jit(prep.train)
    key = jax.random.key(0)
    jax.block_until_ready(train(batch, key))
    start = time.perf_counter()
    for _ in range(5):
        out = train(batch, key)
    jax.block_until_ready(out)
    return host, 5 * config.batch_size / (time.perf_counter() - start)


def time_legacy(root: str, workers: int, repo: str) -> float:
    """Host images/s of `repo`'s per-image NumPy chain on the same files and workers."""
    import grain
    from absl import flags as absl_flags

    from vision_jax.data.folder import FolderSource

    spec = importlib.util.spec_from_file_location(
        "legacy_transforms", os.path.join(repo, "vision_jax", "data", "transforms.py"))
    legacy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(legacy)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    chain = legacy.RandomChain([legacy.RandomScale((1.0, 3.5)), legacy.RandomHorizontalFlip()])

    def stack(examples):
        return {"image": np.stack([e["image"] for e in examples]).astype(np.float32),
                "label": np.asarray([e["label"] for e in examples], np.int32)}

    dataset = (grain.MapDataset.source(FolderSource(root, "train", channels=3))
               .shuffle(seed=0).repeat(None)
               .map(legacy.ToFloat()).map(legacy.Resize(SIZE))
               .random_map(chain, seed=1).map(legacy.Normalize(mean, std))
               .batch(_BATCH.value, drop_remainder=True, batch_fn=stack))
    iter_dataset = dataset.to_iter_dataset(grain.ReadOptions(num_threads=8,
                                                             prefetch_buffer_size=16))
    if workers:
        if not absl_flags.FLAGS.is_parsed():
            absl_flags.FLAGS.mark_as_parsed()
        iter_dataset = iter_dataset.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    iterator = iter(iter_dataset)
    try:
        return _time(iterator, _BATCHES.value, _BATCH.value)
    finally:
        close = getattr(iterator, "close", None)
        if close:
            close()


def main(argv) -> None:
    del argv
    cores = max(_WORKERS.value, 1)
    rows = []
    with tempfile.TemporaryDirectory() as root:
        write_jpegs(root, _IMAGES.value)
        host, device = time_ours(root, _WORKERS.value)
        rows.append({"pipeline": "on-device augmentation (host: decode, resize, uint8 batch)",
                     "host images/s": host, "images/s per host core": host / cores,
                     "host cores per TPU v4 chip": TPU_V4_IMAGES_PER_S / (host / cores),
                     "device augmentation images/s": device})
        if _LEGACY.value:
            legacy = time_legacy(root, _WORKERS.value, _LEGACY.value)
            rows.append({"pipeline": "host-side NumPy augmentation (before)",
                         "host images/s": legacy, "images/s per host core": legacy / cores,
                         "host cores per TPU v4 chip": TPU_V4_IMAGES_PER_S / (legacy / cores),
                         "device augmentation images/s": None})
    result = {"suite": "input_pipeline", "images": _IMAGES.value, "workers": _WORKERS.value,
              "batch_size": _BATCH.value, "source": "500x375 JPEG q90 -> 224", "rows": rows,
              "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}
    lines = ["| pipeline | host img/s | img/s per host core | host cores per TPU v4 chip "
             "(2,000 img/s) | device aug img/s |", "|---|---|---|---|---|"]
    for row in rows:
        device = row["device augmentation images/s"]
        lines.append(f"| {row['pipeline']} | {row['host images/s']:.0f} | "
                     f"{row['images/s per host core']:.0f} | "
                     f"{row['host cores per TPU v4 chip']:.1f} | "
                     f"{'' if device is None else f'{device:.0f}'} |")
    table = "\n".join(lines)
    print(table)
    print(f"load average before/after: {result['load_average']}")
    if _OUT.value:
        os.makedirs(_OUT.value, exist_ok=True)
        with open(os.path.join(_OUT.value, "input_pipeline.json"), "w") as f:
            json.dump(result, f, indent=1)
        with open(os.path.join(_OUT.value, "input_pipeline.md"), "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    app.run(main)
