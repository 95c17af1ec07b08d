"""Detection end to end through `python -m vision_jax.train` on a small COCO-format folder:
the outputs a user looks at, 8 simulated devices agreeing with 1, and `vision_jax.predict`."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from train_cli import REPO, cpu_env, run_train

from vision_jax.data.builtin import shapes_detection

# Several multi-device detection training runs (minutes of compilation on 2 cores): run
# with `pytest -m slow`; CI runs the fast suite (`-m "not slow"`).
pytestmark = pytest.mark.slow

NUM_VAL = 13  # not a multiple of the eval batch: the last batch is padded


@pytest.fixture(scope="module")
def coco_root(tmp_path_factory):
    """Shapes scenes written as a COCO-format dataset (train 16, val 13 images)."""
    root = tmp_path_factory.mktemp("coco_shapes")
    (root / "annotations").mkdir()
    for split, count in (("train", 16), ("val", NUM_VAL)):
        (root / split).mkdir()
        images, annotations = [], []
        for index in range(count):
            scene = shapes_detection.generate_example("train" if split == "train" else "test",
                                                      index)
            name = f"{index:04d}.png"
            Image.fromarray(scene["image"]).save(root / split / name)
            images.append({"id": index + 1, "file_name": name, "width": 96, "height": 96})
            for box, label in zip(scene["boxes"], scene["labels"], strict=True):
                x0, y0, x1, y1 = (float(v) for v in box)
                annotations.append({"id": len(annotations) + 1, "image_id": index + 1,
                                    "category_id": int(label), "bbox": [x0, y0, x1 - x0, y1 - y0],
                                    "iscrowd": 0})
        categories = [{"id": i + 1, "name": n} for i, n in enumerate(shapes_detection.CLASS_NAMES)]
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(
            {"images": images, "annotations": annotations, "categories": categories}))
    return root


def _overrides(root) -> list[str]:
    # A tiny model: compilation dominates these runs.
    return [f"--config.dataset=coco:{root}", "--config.train_split=train",
            "--config.eval_split=val", "--config.image_size=64", "--config.batch_size=8",
            "--config.eval_batch_size=8", "--config.model.backbone_width=8",
            "--config.model.fpn_width=16", "--config.model.head_convs=1"]


def _records(workdir) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def one_device_run(tmp_path_factory, coco_root):
    workdir = tmp_path_factory.mktemp("det_1")
    result = run_train(workdir, *_overrides(coco_root), config="configs/shapes_yolo.py:smoke")
    return workdir, result


def test_run_writes_metrics_reports_and_examples(one_device_run):
    workdir, result = one_device_run
    final = json.loads(result.stdout.strip().splitlines()[-1])
    for key in ("eval/map", "eval/map50", "eval/map75"):
        assert 0.0 <= final[key] <= 1.0
    records = _records(workdir)
    assert [r["step"] for r in records if "train/loss" in r] == [2, 4]
    assert all(np.isfinite(r["train/loss"]) for r in records if "train/loss" in r)
    report = json.load(open(workdir / "eval_detection_report.json"))
    assert report["images"] == NUM_VAL  # padding images are not counted
    assert report["metrics"]["map50"] == pytest.approx(final["eval/map50"])
    assert set(report["per_class"]) == set(shapes_detection.CLASS_NAMES)
    assert "circle" in (workdir / "eval_detection_report.txt").read_text()
    examples = sorted(os.listdir(workdir / "eval_examples"))
    assert examples and examples[0] == "000.png"
    with open(workdir / "eval_examples" / examples[0], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_eight_devices_agree_with_one(tmp_path, one_device_run, coco_root):
    workdir, _ = one_device_run
    sharded = tmp_path / "det_8"
    run_train(sharded, *_overrides(coco_root), devices=8, config="configs/shapes_yolo.py:smoke")
    one, eight = _records(workdir), _records(sharded)
    assert [sorted(r) for r in one] == [sorted(r) for r in eight]
    for a, b in zip(one, eight, strict=True):
        for key in a:
            tolerance = 2e-2 if key.startswith("eval/") else 1e-3
            assert b[key] == pytest.approx(a[key], rel=tolerance, abs=1e-4), key


def test_predict_writes_json_and_pictures(one_device_run, coco_root, tmp_path):
    workdir, _ = one_device_run
    images = coco_root / "val"
    out = subprocess.run([sys.executable, "-m", "vision_jax.predict", f"--workdir={workdir}",
                          f"--images={images / '0000.png'}", f"--images={images / '0001.png'}",
                          f"--out={tmp_path}"], cwd=REPO, env=cpu_env(), capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    predictions = json.load(open(tmp_path / "predictions.json"))
    assert [p["image"] for p in predictions] == ["0000.png", "0001.png"]
    for p in predictions:
        for d in p["detections"]:
            assert d["class"] in shapes_detection.CLASS_NAMES and 0 <= d["confidence"] <= 1
            x0, y0, x1, y1 = d["box_xyxy"]
            assert 0 <= x0 <= x1 <= 96 and 0 <= y0 <= y1 <= 96  # original image pixels
    for name in ("0000.detections.png", "0001.detections.png"):
        with Image.open(tmp_path / name) as im:
            assert im.size == (384, 384)  # 96 px images drawn 4x larger (readable labels)
