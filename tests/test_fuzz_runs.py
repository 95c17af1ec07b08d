"""The run-level fuzz of issue 12's acceptance: random folder datasets (class folders and
image + mask folders), each mixing good files with the failure kinds (truncated, wrong
channels, wrong mode, empty, not an image, unmapped mask values, mismatched sizes, empty
class folders), trained for 2 steps by the real CLI. Each run either trains (exit 0) or stops
before compiling with exactly one ``error:`` line naming a file or folder of the dataset
(exit 2). No traceback, ever.

The 200-dataset version is slow (one process each); JAX's persistent compilation cache,
shared by the runs, and a fixed image size per task keep each compile a cache hit after the
first. ``VJ_FUZZ_LOG=<file>`` appends one JSON line per run (seed, task, kinds, outcome,
seconds) for the report.
"""

from __future__ import annotations

import collections
import concurrent.futures
import io
import json
import os
import random
import time

import numpy as np
import pytest
from PIL import Image
from train_cli import run_train

IMAGE_KINDS = ("truncated", "empty", "not an image", "grey", "other mode", "other size")
CLASS_KINDS = (*IMAGE_KINDS, "empty class folder")
MASK_KINDS = ("truncated mask", "empty mask", "not an image mask", "rgb mask",
              "unmapped values", "mismatched size")
SEGMENTATION_KINDS = ("truncated", "empty", "not an image", "grey", "other mode", "other size",
                      *MASK_KINDS)
# How each task trains: a tiny model, 2 steps, one fixed image size (compiles repeat).
CLASSIFICATION_RUN = ("configs/mnist_cnn.py:smoke", [
    "--config.image_size=20", "--config.batch_size=4", "--config.eval_batch_size=4"])
SEGMENTATION_RUN = ("configs/pets_unet.py:smoke", [
    "--config.image_size=16", "--config.batch_size=4", "--config.eval_batch_size=4",
    "--config.eval_split=test", "--config.num_classes=3",
    "--config.segmentation.class_names=('pet', 'background', 'border')"])
COMMON = ["--config.num_steps=2", "--config.log_every_steps=1", "--config.eval_every_steps=2",
          "--config.checkpoint_every_steps=2"]


def _pixels(rng: random.Random, size: tuple[int, int]) -> np.ndarray:
    return np.random.default_rng(rng.randrange(10**6)).integers(
        0, 256, (size[1], size[0], 4), np.uint8)


def _write_image(path, rng: random.Random, kind: str = "good", size=(12, 10)) -> None:
    """A file of `kind` at `path` (a good RGB image, or one of `IMAGE_KINDS`)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rgba = Image.fromarray(_pixels(rng, size), "RGBA")
    fmt = "JPEG" if str(path).lower().endswith((".jpg", ".jpeg")) else "PNG"
    if kind == "good" or kind == "other size":
        if kind == "other size":
            rgba = rgba.resize((rng.randrange(3, 40), rng.randrange(3, 40)))
        rgba.convert("RGB").save(path, fmt)
    elif kind == "truncated":
        buffer = io.BytesIO()
        rgba.convert("RGB").save(buffer, fmt)
        data = buffer.getvalue()
        with open(path, "wb") as f:
            f.write(data[:rng.randrange(10, max(11, len(data) - 10))])
    elif kind == "empty":
        open(path, "wb").close()
    elif kind == "not an image":
        with open(path, "w") as f:
            f.write("hello, I am a text file\n")
    elif kind == "grey":
        rgba.convert("L").save(path, fmt)
    elif kind == "other mode":
        modes = ["P", "RGBA", "LA", "I;16", "1"] if fmt == "PNG" else ["L", "CMYK"]
        rgba.convert(rng.choice(modes)).save(path, fmt)
    else:
        raise ValueError(kind)


def _write_mask(path, rng: random.Random, kind: str = "good", size=(12, 10)) -> None:
    """A trimap (values 1..3) of `kind` at `path` (good, or one of `MASK_KINDS`)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    values = np.random.default_rng(rng.randrange(10**6)).integers(1, 4, (size[1], size[0]))
    mask = Image.fromarray(values.astype(np.uint8))
    if kind == "good":
        mask.save(path)
    elif kind == "truncated mask":
        buffer = io.BytesIO()
        mask.save(buffer, "PNG")
        data = buffer.getvalue()
        with open(path, "wb") as f:
            f.write(data[:rng.randrange(10, len(data) - 4)])
    elif kind == "empty mask":
        open(path, "wb").close()
    elif kind == "not an image mask":
        with open(path, "w") as f:
            f.write("not a mask\n")
    elif kind == "rgb mask":
        mask.convert("RGB").save(path)
    elif kind == "unmapped values":
        values[rng.randrange(size[1]), rng.randrange(size[0])] = rng.choice([0, 4, 9, 200])
        Image.fromarray(values.astype(np.uint8)).save(path)
    elif kind == "mismatched size":
        mask.resize((size[0] + rng.randrange(1, 5), size[1])).save(path)
    else:
        raise ValueError(kind)


def _classification_dataset(root, rng: random.Random) -> tuple[list[str], list[str]]:
    """root/<class>/<files>: 2 or 3 classes of 3..5 good files, plus 1..3 bad ones; returns
    (the kinds put in, the overrides)."""
    classes = [f"c{i}" for i in range(rng.choice([2, 3]))]
    for name in classes:
        for i in range(rng.randrange(3, 6)):
            _write_image(root / name / f"good{i}{rng.choice(['.png', '.jpg'])}", rng)
    kinds = []
    for i in range(rng.randrange(1, 4)):
        kind = rng.choice(CLASS_KINDS)
        kinds.append(kind)
        if kind == "empty class folder":
            (root / f"empty{i}").mkdir(exist_ok=True)
        else:
            suffix = rng.choice([".png", ".jpg", ".JPEG"])
            _write_image(root / rng.choice(classes) / f"bad{i}{suffix}", rng, kind)
    channels = rng.choice([0, 0, 1, 3])
    return kinds, [f"--config.num_classes={len(classes)}", f"--config.image_channels={channels}"]


def _segmentation_dataset(root, rng: random.Random) -> tuple[list[str], list[str]]:
    """root/images + root/annotations/trimaps: 6..9 good pairs, then 1..3 of them spoilt."""
    count = rng.randrange(6, 10)
    sizes = [(rng.choice([12, 16]), rng.choice([10, 16])) for _ in range(count)]
    for i, size in enumerate(sizes):
        _write_image(root / "images" / f"p{i}.png", rng, size=size)
        _write_mask(root / "annotations" / "trimaps" / f"p{i}.png", rng, size=size)
    kinds = []
    for i in rng.sample(range(count), rng.randrange(1, 4)):
        kind = rng.choice(SEGMENTATION_KINDS)
        kinds.append(kind)
        if kind in MASK_KINDS:
            _write_mask(root / "annotations" / "trimaps" / f"p{i}.png", rng, kind, sizes[i])
        elif kind != "other size":  # the image alone resized would mismatch its mask
            _write_image(root / "images" / f"p{i}.png", rng, kind, sizes[i])
    return kinds, []


def fuzz_case(seed: int, tmp_path, cache_dir: str) -> dict:
    """Builds dataset `seed`, runs the CLI on it, checks the outcome; returns the record."""
    rng = random.Random(seed)
    root = tmp_path / "data"
    segmentation = rng.random() < 0.3
    if segmentation:
        kinds, extra = _segmentation_dataset(root, rng)
        (config, overrides), dataset = SEGMENTATION_RUN, f"segmentation_folder:{root}"
    else:
        kinds, extra = _classification_dataset(root, rng)
        (config, overrides), dataset = CLASSIFICATION_RUN, f"folder:{root}"
    env = {"JAX_COMPILATION_CACHE_DIR": cache_dir,
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    start = time.time()
    result = run_train(tmp_path / "run", f"--config.dataset={dataset}", *overrides, *COMMON,
                       *extra, config=config, env_extra=env, check=False, timeout=600)
    where = f"seed {seed} ({'segmentation' if segmentation else 'classification'}, {kinds})"
    assert "Traceback" not in result.stderr + result.stdout, f"{where}:\n{result.stderr[-4000:]}"
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    if result.returncode == 0:
        outcome = "trained"
        assert not errors, f"{where}: {errors}"
        assert (tmp_path / "run" / "checkpoints" / "2").is_dir(), where
    else:
        outcome = "refused"
        assert result.returncode == 2, f"{where}: exit {result.returncode}\n{result.stderr[-4000:]}"
        assert len(errors) == 1, f"{where}:\n{result.stderr[-4000:]}"
        assert str(root) in errors[0], f"{where}: the error names no file: {errors[0]}"
        assert not (tmp_path / "run" / "checkpoints").exists(), where  # stopped before training
    record = {"seed": seed, "task": "segmentation" if segmentation else "classification",
              "kinds": kinds, "extra": extra, "outcome": outcome,
              "error": errors[0] if errors else None, "seconds": round(time.time() - start, 1)}
    if os.environ.get("VJ_FUZZ_LOG"):
        with open(os.environ["VJ_FUZZ_LOG"], "a") as f:
            f.write(json.dumps(record) + "\n")
    return record


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("jax_cache"))


# Refused before compiling (a few seconds each, so CI runs them): a truncated image, an empty
# class folder, a trimap with a value outside the mapping. The runs that train are in the
# slow 200.
CI_SEEDS = (5, 11, 55)


@pytest.mark.parametrize("seed", CI_SEEDS)
def test_fuzz_run_trains_or_names_a_file(tmp_path, cache_dir, seed):
    fuzz_case(seed, tmp_path, cache_dir)


@pytest.mark.slow  # 200 processes; VJ_FUZZ_JOBS of them at a time (1 by default)
def test_fuzz_200_runs_train_or_name_a_file(tmp_path, cache_dir):
    jobs = int(os.environ.get("VJ_FUZZ_JOBS", "1"))
    failures, records = [], []

    def case(seed: int) -> None:
        try:
            records.append(fuzz_case(seed, tmp_path / f"seed{seed}", cache_dir))
        except AssertionError as failure:
            failures.append(str(failure))

    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        list(pool.map(case, range(200)))
    outcomes = collections.Counter(r["outcome"] for r in records)
    print(f"fuzz: {dict(outcomes)}, {len(failures)} failed")
    assert not failures, f"{len(failures)} of 200 runs failed:\n" + "\n\n".join(failures[:5])
