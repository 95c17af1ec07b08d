"""Segmentation end to end through `python -m vision_jax.train` on a generated Pet-layout folder:
training writes the reports, 8 simulated devices agree with 1, and predict writes mask PNGs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from test_segmentation_data import write_pet_folder
from train_cli import REPO, cpu_env, run_train

# Several multi-device segmentation training runs (minutes of compilation on 2 cores): run
# with `pytest -m slow`; CI runs the fast suite (`-m "not slow"`).
pytestmark = pytest.mark.slow

CONFIG = "configs/pets_unet.py:smoke"


def _overrides(data, tfds_dir):
    return (f"--config.dataset=segmentation_folder:{data}", f"--config.data_dir={tfds_dir}",
            "--config.num_classes=3", "--config.eval_split=test",
            "--config.segmentation.class_names=('pet', 'background', 'border')",
            "--config.image_size=32", "--config.batch_size=16", "--config.eval_batch_size=16",
            "--config.num_steps=4", "--config.eval_every_steps=2",
            "--config.checkpoint_every_steps=4", "--config.log_every_steps=2",
            "--config.augment.crop_padding=2", "--config.augment.scale=(0.8, 1.2)")


def _metrics(workdir):
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def pet_run(tmp_path_factory):
    """One training run on 1 device and the same run on 8 simulated devices."""
    base = tmp_path_factory.mktemp("seg_train")
    data = write_pet_folder(base / "pets", count=30)
    tfds_dir = base / "tfds"
    tfds_dir.mkdir()
    one, eight = base / "one", base / "eight"
    run_train(one, *_overrides(data, tfds_dir), config=CONFIG, devices=1)
    run_train(eight, *_overrides(data, tfds_dir), config=CONFIG, devices=8)
    return data, one, eight


def test_training_writes_metrics_and_reports(pet_run):
    _, one, _ = pet_run
    records = _metrics(one)
    evals = [r for r in records if "eval/miou" in r]
    assert [r["step"] for r in evals] == [2, 4]
    final = evals[-1]
    for key in ("eval/loss", "eval/pixel_accuracy", "eval/miou", "eval/iou/pet",
                "eval/iou/background"):
        assert np.isfinite(final[key])
    assert 0.0 <= final["eval/miou"] <= 1.0
    assert any("train/pixel_accuracy" in r for r in records)
    with open(one / "eval_segmentation_report.json") as f:
        report = json.load(f)
    assert [c["class"] for c in report["classes"]] == ["pet", "background", "border"]
    np.testing.assert_allclose(report["miou"], final["eval/miou"], rtol=1e-6)
    conf = np.loadtxt(one / "eval_confusion_matrix.csv", delimiter=",")
    # Test split: round(0.2 * 30) = 6 images of 32x32 pixels, none ignored at eval.
    assert conf.sum() == 6 * 32 * 32
    assert (one / "eval_examples.png").stat().st_size > 0


def test_eight_devices_agree_with_one(pet_run):
    _, one, eight = pet_run
    a, b = _metrics(one), _metrics(eight)
    assert [sorted(r) for r in a] == [sorted(r) for r in b]
    for ra, rb in zip(a, b, strict=True):
        for key, value in ra.items():
            np.testing.assert_allclose(rb[key], value, rtol=2e-3, atol=2e-3, err_msg=key)


def test_predict_writes_mask_and_overlay_pngs(pet_run, tmp_path):
    data, one, _ = pet_run
    images = [os.path.join(data, "images", f"Breed_{i}.jpg") for i in (0, 1)]
    result = subprocess.run(
        [sys.executable, "-m", "vision_jax.predict", f"--workdir={one}", f"--images={images[0]}",
         f"--images={images[1]}", f"--out={tmp_path}"],
        cwd=REPO, env=cpu_env(1), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    for path in images:
        stem = os.path.splitext(os.path.basename(path))[0]
        with Image.open(path) as original:
            size = original.size
        with Image.open(tmp_path / f"{stem}_mask.png") as mask:
            assert mask.size == size  # back at the original resolution
            assert set(np.unique(np.asarray(mask))) <= {0, 1, 2}
        with Image.open(tmp_path / f"{stem}_overlay.png") as overlay:
            assert overlay.size == size and overlay.mode == "RGB"
    with open(tmp_path / "predictions.json") as f:
        assert [p["image"] for p in json.load(f)] == ["Breed_0.jpg", "Breed_1.jpg"]


def test_malformed_folder_is_a_one_line_error(tmp_path):
    data = write_pet_folder(tmp_path / "pets", count=6)
    os.remove(os.path.join(data, "annotations", "trimaps", "Breed_4.png"))
    result = run_train(tmp_path / "run", *_overrides(data, tmp_path), config=CONFIG, check=False)
    assert result.returncode == 2
    assert "Breed_4.jpg has no mask" in result.stderr
    assert "Traceback" not in result.stderr
