"""Both issue-16 tasks end to end through `python -m vision_jax.train` with their configs'
`:smoke` argument: the reports, the per-label bar chart and the thresholds file, `predict`
applying the saved thresholds, and the held-out identities of the verification run."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from train_cli import REPO, cpu_env, run_train

from vision_jax.data.builtin import shapes_multilabel

LABELS = ["circle", "square", "triangle"]


def _records(workdir) -> list[dict]:
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


CAPPED_EXAMPLES = 200  # per split (the smoke eval split is test[:200]); the whole build
# takes minutes on a loaded machine


@pytest.fixture(scope="module")
def multilabel_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("multilabel_train")
    data_dir = base / "tfds"
    builder = shapes_multilabel.ShapesMultilabel(data_dir=str(data_dir),
                                                 file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(
        max_examples_per_split=CAPPED_EXAMPLES))
    workdir = base / "run"
    result = run_train(workdir, f"--config.data_dir={data_dir}",
                       config="configs/shapes_multilabel.py:smoke", timeout=1500)
    return workdir, json.loads(result.stdout.strip().splitlines()[-1])


def test_multilabel_smoke_run_writes_reports_chart_and_thresholds(multilabel_run):
    workdir, final = multilabel_run
    evals = [r for r in _records(workdir) if "eval/map" in r]
    assert [r["step"] for r in evals] == [3, 6]
    assert any("train/subset_accuracy" in r for r in _records(workdir))
    for key in ("eval/map", "eval/subset_accuracy", "eval/hamming_loss", "eval/macro_f1",
                "eval/chosen_macro_f1", *(f"eval/ap/{name}" for name in LABELS)):
        assert 0.0 <= final[key] <= 1.0, key
    report = json.load(open(workdir / "eval_multilabel_report.json"))
    assert [key for key in report if key in LABELS] == LABELS
    assert report["examples"] == CAPPED_EXAMPLES  # eval_split test[:200] of the capped split
    assert report["mAP"] == pytest.approx(final["eval/map"], rel=1e-6)
    text = (workdir / "eval_multilabel_report.txt").read_text()
    assert "mAP" in text and "triangle" in text
    with open(workdir / "eval_label_metrics.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    saved = json.load(open(workdir / "eval_thresholds.json"))
    assert saved["rule"] == "best F1 on eval"
    assert list(saved["thresholds"]) == LABELS
    for name in LABELS:  # the chosen thresholds are the ones the summary reported
        assert saved["thresholds"][name] == pytest.approx(final[f"eval/threshold/{name}"])
        assert report[name]["threshold"] == pytest.approx(saved["thresholds"][name])
        assert report[name]["f1-score"] == pytest.approx(final[f"eval/chosen_f1/{name}"])


def test_predict_applies_the_saved_thresholds(multilabel_run, tmp_path):
    workdir, _ = multilabel_run
    images = tmp_path / "images"
    images.mkdir()
    for index in range(3):
        image = shapes_multilabel.generate_example("test", index)["image"]
        Image.fromarray(image).save(images / f"scene{index}.png")
    result = subprocess.run([sys.executable, "-m", "vision_jax.predict", f"--workdir={workdir}",
                             f"--images={images}"], cwd=REPO, env=cpu_env(1),
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, result.stderr[-3000:]
    out = workdir / "predictions"
    predictions = json.load(open(out / "predictions.json"))
    used = json.load(open(out / "thresholds_used.json"))
    assert used["from"] == str(workdir / "eval_thresholds.json")
    saved = json.load(open(workdir / "eval_thresholds.json"))["thresholds"]
    assert used["thresholds"] == pytest.approx(saved)
    assert [p["image"] for p in predictions] == [f"scene{i}.png" for i in range(3)]
    for entry in predictions:
        probabilities = entry["probabilities"]
        assert list(probabilities) == LABELS
        assert entry["labels"] == [name for name in LABELS
                                   if probabilities[name] >= saved[name]]


@pytest.fixture(scope="module")
def verification_run(tmp_path_factory, digits_data_dir):
    workdir = tmp_path_factory.mktemp("verification_train") / "run"
    result = run_train(workdir, f"--config.data_dir={digits_data_dir}",
                       config="configs/digits_verification.py:smoke", timeout=1500)
    return workdir, json.loads(result.stdout.strip().splitlines()[-1])


def test_verification_smoke_run_evaluates_held_out_digits(verification_run):
    workdir, final = verification_run
    evals = [r for r in _records(workdir) if "eval/pair_auc" in r]
    assert [r["step"] for r in evals] == [3, 6]
    assert 0.0 <= final["eval/pair_auc"] <= 1.0
    assert 0.0 <= final["eval/one_shot_accuracy"] <= 1.0
    # test@7-9: 100 test images of each held-out digit, one reference per digit.
    assert final["eval/one_shot_references"] == 3
    assert final["eval/one_shot_queries"] == 297
    report = json.load(open(workdir / "eval_verification_report.json"))
    assert report["identities"] == [7, 8, 9] and report["examples"] == 300
    assert report["loss"] == "triplet" and report["margin"] == pytest.approx(0.5)
    assert report["metrics"]["pair_auc"] == pytest.approx(final["eval/pair_auc"])
    config = json.load(open(workdir / "config.json"))
    assert config["train_split"] == "train@0-6/rot90flip+halves~6r180"
    assert config["eval_split"] == "test@7-9"
    assert np.isfinite(final["eval/loss"])
