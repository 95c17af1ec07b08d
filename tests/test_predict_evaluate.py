"""`vision_jax.predict` and `vision_jax.evaluate` as a user runs them, on one smoke-trained MNIST
workdir: images given every way a shell passes them, unambiguous names, the screen table,
Parquet probabilities equal to the JSON's, pooled features, Grad-CAM overlays, and one-line
errors for an empty folder, an unknown split and a slice split's file names. The multi-label
writing path is tested on the task object directly (no multi-label training needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from train_cli import REPO, cpu_env, run_train

from vision_jax import predict, predict_writers
from vision_jax.errors import ConfigError


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, digits_data_dir):
    path = tmp_path_factory.mktemp("mnist_smoke")
    run_train(path, f"--config.data_dir={digits_data_dir}")
    return path


@pytest.fixture(scope="module")
def image_tree(tmp_path_factory):
    """a/x0.png ... and b/x0.png ...: the same file names in two folders."""
    root = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for folder in ("a", "b"):
        (root / folder).mkdir()
        for i in range(3):
            pixels = rng.integers(0, 256, (28, 28), dtype=np.uint8)
            Image.fromarray(pixels).save(root / folder / f"x{i}.png")
    return root


def _cli(module: str, *args: str, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd,
                          env=cpu_env(), capture_output=True, text=True, timeout=600)


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return lines[0]


@pytest.fixture(scope="module")
def predicted(workdir, image_tree, tmp_path_factory):
    """One run the way a shell passes an unquoted `--images */*.png`: the first path after
    --images, the others as arguments."""
    out = tmp_path_factory.mktemp("predicted")
    files = sorted(str(p.relative_to(image_tree)) for p in image_tree.glob("*/*.png"))
    result = _cli("vision_jax.predict", f"--workdir={workdir}", "--images", *files,
                  f"--out={out}", f"--output={out / 'preds.parquet'}", "--explain=gradcam",
                  "--show=4", cwd=image_tree)
    assert result.returncode == 0, result.stderr[-3000:]
    return out, files, result.stdout


def test_unquoted_glob_predicts_every_file_with_unambiguous_names(predicted):
    out, files, _ = predicted
    records = json.load(open(out / "predictions.json"))
    assert [r["image"] for r in records] == files == [
        "a/x0.png", "a/x1.png", "a/x2.png", "b/x0.png", "b/x1.png", "b/x2.png"]
    for record in records:
        assert len(record["top"]) == 5
        probabilities = [t["probability"] for t in record["top"]]
        assert probabilities == sorted(probabilities, reverse=True)


def test_the_screen_shows_the_first_rows_and_where_files_went(predicted):
    out, _, stdout = predicted
    lines = stdout.strip().splitlines()
    assert lines[0].split() == ["image", "prediction"]
    assert [line.split()[0] for line in lines[1:5]] == ["a/x0.png", "a/x1.png", "a/x2.png",
                                                        "b/x0.png"]
    assert "... and 2 more" in stdout
    assert str(out / "predictions.json") in lines[-1] and "preds.parquet" in lines[-1]


def test_parquet_probabilities_equal_the_json(predicted):
    out, _, _ = predicted
    table = pq.read_table(out / "preds.parquet")
    assert table.schema.field("probabilities").type.value_type == "float"
    assert json.loads(table.schema.metadata[b"class_names"]) == [str(d) for d in range(10)]
    rows = table.to_pylist()
    records = json.load(open(out / "predictions.json"))
    assert [row["image"] for row in rows] == [r["image"] for r in records]
    for row, record in zip(rows, records, strict=True):
        assert len(row["probabilities"]) == 10
        assert sum(row["probabilities"]) == pytest.approx(1.0, abs=1e-5)
        assert row["label"] == record["top"][0]["class"]
        assert row["top_k_indices"] == [t["index"] for t in record["top"]]
        assert row["top_k_probabilities"] == [t["probability"] for t in record["top"]]
        # JSON holds the float32 probabilities exactly; the Parquet column is float32.
        assert [row["probabilities"][t["index"]] for t in record["top"]] == \
            [t["probability"] for t in record["top"]]


def test_gradcam_overlays_are_written_per_image(predicted):
    out, files, _ = predicted
    explained = json.load(open(out / "gradcam.json"))
    records = json.load(open(out / "predictions.json"))
    assert [e["image"] for e in explained] == files
    assert [e["class_index"] for e in explained] == [r["top"][0]["index"] for r in records]
    for name in files:
        pixels = np.asarray(Image.open(out / name.replace(".png", "_gradcam.png")))
        assert pixels.shape == (28, 28, 3) and pixels.std() > 0


def test_features_are_the_layers_output(workdir, image_tree, predicted, tmp_path):
    """The dense layer's "features" are the logits: their softmax is the probability table."""
    out, _, _ = predicted
    result = _cli("vision_jax.predict", f"--workdir={workdir}", image_tree / "a",
                  image_tree / "b", f"--out={tmp_path}", "--features=classifier")
    assert result.returncode == 0, result.stderr[-3000:]
    table = pq.read_table(tmp_path / "features.parquet")
    assert table.schema.metadata[b"layer"] == b"classifier"
    logits = np.asarray(table["features"].to_pylist(), np.float64)
    softmax = np.exp(logits - logits.max(1, keepdims=True))
    softmax /= softmax.sum(1, keepdims=True)
    expected = np.asarray(pq.read_table(out / "preds.parquet")["probabilities"].to_pylist())
    np.testing.assert_allclose(softmax, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("make, expected", [
    (lambda root: root.mkdir() or root, "is a directory with no image file"),
    (lambda root: root / "*.png", "matches no file"),
])
def test_no_image_is_a_one_line_error(tmp_path, make, expected):
    # Checked before the run is restored: a workdir that does not exist is never reached.
    target = make(tmp_path / "empty")
    message = _one_line_error(_cli("vision_jax.predict", f"--workdir={tmp_path}",
                                   f"--images={target}"))
    assert expected in message


def test_display_names_are_relative_to_the_common_folder(tmp_path):
    paths = [str(tmp_path / "a" / "x.png"), str(tmp_path / "b" / "c" / "x.png")]
    assert predict.display_names(paths) == ["a/x.png", "b/c/x.png"]
    assert predict.display_names([str(tmp_path / "a" / "x.png")]) == ["x.png"]


def test_paths_are_taken_as_named_before_globbing(tmp_path):
    bracketed = tmp_path / "scan[1].png"
    bracketed.write_bytes(b"")
    # As a glob "[1]" would match "scan1.png"; the file exists, so it is the file. Named again
    # through a pattern, it is kept once.
    assert predict.expand_images([str(bracketed), str(tmp_path / "*.png")]) == [str(bracketed)]


def test_fewer_than_five_classes_lists_every_class(tmp_path):
    from vision_jax.tasks.classification import ClassificationTask

    task = ClassificationTask(3, ["cat", "dog", "sun"])
    records = task.write_predictions(None, np.asarray([[0.1, 2.0, -1.0]]), ["x.png"],
                                     str(tmp_path))
    assert [t["class"] for t in records[0]["top"]] == ["dog", "cat", "sun"]


def test_multilabel_predictions_use_the_saved_thresholds(tmp_path):
    from vision_jax.tasks.multilabel import MultilabelTask

    names = ["bike", "person", "tree"]
    task = MultilabelTask(3, names)  # 0.5 each, until the run's choice is loaded
    with open(tmp_path / "eval_thresholds.json", "w") as f:
        json.dump({"rule": "best F1 on eval",
                   "thresholds": {"bike": 0.9, "person": 0.2, "tree": 0.5}}, f)
    assert predict.use_saved_thresholds(task, str(tmp_path), ["eval"]) == \
        str(tmp_path / "eval_thresholds.json")
    logits = np.asarray([[1.0, -1.0, 0.5], [3.0, -2.0, -0.5]], np.float32)  # p: .73 .27 .62
    records = task.write_predictions(None, logits, ["u.png", "v.png"], str(tmp_path))
    assert [r["labels"] for r in records] == [["person", "tree"], ["bike"]]
    table = predict_writers.probability_table(records, logits, names, "multilabel")
    path = predict_writers.write_parquet(table, str(tmp_path / "p.parquet"))
    rows = pq.read_table(path).to_pylist()
    assert [row["labels"] for row in rows] == [r["labels"] for r in records]
    for row, record in zip(rows, records, strict=True):
        assert row["probabilities"] == [record["probabilities"][n] for n in names]


def test_parquet_of_a_task_without_probabilities_is_a_one_line_error():
    records = [{"image": "x.png", "detections": []}]
    with pytest.raises(ConfigError, match=r"config.task='detection'.*drop --output"):
        predict_writers.probability_table(records, None, [], "detection")


def test_evaluate_unknown_split_lists_the_splits(workdir):
    message = _one_line_error(_cli("vision_jax.evaluate", f"--workdir={workdir}",
                                   "--split=validation"))
    assert "--split='validation'" in message and "available: test, train" in message


def test_evaluate_slice_split_reports_have_plain_file_names(workdir):
    result = _cli("vision_jax.evaluate", f"--workdir={workdir}", "--split=test[:100]")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    report = json.load(open(workdir / "test_0-100_classification_report.json"))
    assert report["accuracy"] == pytest.approx(metrics["test[:100]/accuracy"])
    assert sum(report[str(c)]["support"] for c in range(10)) == 100
    assert not [name for name in os.listdir(workdir) if "[" in name]


@pytest.mark.parametrize("split, prefix", [("test", "test"), ("test[:100]", "test_0-100"),
                                           ("test[100:]", "test_100-end"),
                                           ("train[:90%]", "train_0-90pct"),
                                           ("train[10%:20%]+test", "train_10pct-20pct_test")])
def test_split_file_prefixes(split, prefix):
    from vision_jax.evaluate import file_prefix

    assert file_prefix(split) == prefix


def test_screen_table_describes_every_tasks_records():
    records = [
        {"image": "a.png", "top": [{"class": "cat", "index": 0, "probability": 0.9},
                                   {"class": "dog", "index": 1, "probability": 0.1}]},
        {"image": "b.png", "probabilities": {"bike": 0.7}, "labels": ["bike"]},
        {"image": "c.png", "probabilities": {"bike": 0.1}, "labels": []},
        {"image": "d.png", "detections": [{"class": "circle"}, {"class": "circle"}]},
        {"image": "e.png", "class_fractions": {"pet": 0.25, "background": 0.75}},
        {"image": "f.png", "nearest": "a.png", "similarity": 0.5},
    ]
    lines = predict_writers.screen_table(records, rows=6).splitlines()
    assert lines[1:] == ["a.png  cat 0.900, dog 0.100",
                         "b.png  bike",
                         "c.png  (no label above its threshold)",
                         "d.png  2 object(s): circle",
                         "e.png  background 75%, pet 25%",
                         "f.png  nearest a.png (cosine 0.500)"]
    assert predict_writers.screen_table(records, rows=2).splitlines()[-1] == "... and 4 more"
