"""A file that fails mid-run (after the pre-run scan passed) is skipped with a warning naming
it, counted and listed at the end; the run finishes, batch shapes do not change, an eval row
standing in for it has mask 0, and a kill -9 + resume still equals the uninterrupted run."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess

import numpy as np
import pytest
from PIL import Image
from train_cli import run_train, start_and_signal

from vision_jax.data import folder as folder_lib
from vision_jax.data import scan, skipped
from vision_jax.data.config import data_section
from vision_jax.data.pipeline import make_eval_iterator, make_train_iterator
from vision_jax.training.defaults import default_config


def _png(path, seed: int, size=(8, 8)) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    Image.fromarray(pixels).save(path)


def _truncated_jpeg(path, size=(8, 8)) -> None:
    """A JPEG whose header reads (listing and sizes pass) but whose pixels do not decode."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((size[1], size[0], 3), 99, np.uint8)).save(buffer, "JPEG")
    data = buffer.getvalue()
    with open(path, "wb") as f:
        f.write(data[:data.index(b"\xff\xda") + 20])


def _config(dataset: str):
    config = default_config()
    config.dataset, config.num_classes, config.image_size = dataset, 2, 8
    config.batch_size = config.eval_batch_size = 4
    return config


def test_a_bad_file_is_replaced_by_the_next_readable_record(tmp_path):
    for split in ("train", "test"):
        for label in ("a", "b"):
            for i in range(2):
                _png(tmp_path / split / label / f"{i}.png", seed=i)
    bad = tmp_path / "test" / "a" / "1.png"
    os.remove(bad)
    _truncated_jpeg(bad)  # after nothing scanned it: this path builds no run
    folder_lib.index_folder.cache_clear()
    skipped.clear()
    data = data_section(_config(f"folder:{tmp_path}"))

    batches = list(make_eval_iterator(data, process_index=0, process_count=1))
    assert [b["mask"].tolist() for b in batches] == [[1.0, 0.0, 1.0, 1.0]]
    # The replacement is the next file in source order (test/b/0.png), not padding.
    assert batches[0]["label"].tolist() == [0, 1, 1, 1]
    assert list(skipped.skipped_files()) == [str(bad)]

    train = make_train_iterator(data, process_index=0, process_count=1)
    for _ in range(3):
        batch = next(train)
        assert batch["image"].shape == (4, 8, 8, 3)
    assert skipped.report(tmp_path) == [str(bad)]
    assert (tmp_path / "skipped_files.txt").read_text().startswith(f"{bad}\tcannot decode")
    assert skipped.skipped_files() == {}


def _dataset_with_an_unscanned_bad_file(root) -> str:
    """A folder whose last file in sorted order is bad and lies outside the scan's sample:
    more files than `SCAN_LIMIT` (an extra split the run never reads makes up the number)."""
    for i in range(scan.SCAN_LIMIT):
        _png(root / "extra" / "a" / f"{i:04d}.png", seed=i % 7)
    for split in ("train", "test"):
        for label in ("a", "b"):
            for i in range(4):
                _png(root / split / label / f"{i}.png", seed=i + 10 * len(label))
    bad = root / "train" / "b" / "9.jpg"
    _truncated_jpeg(bad)
    return str(bad)


def _overrides(root) -> list[str]:
    return [f"--config.dataset=folder:{root}", "--config.num_classes=2",
            "--config.image_size=20", "--config.batch_size=4", "--config.eval_batch_size=4",
            "--config.log_every_steps=1", "--config.eval_every_steps=10",
            "--config.checkpoint_every_steps=5", "--config.model.dropout_rate=0.3"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("unscanned")
    return root, _dataset_with_an_unscanned_bad_file(root)


def test_the_run_finishes_warns_and_lists_the_file(tmp_path, data_root):
    root, bad = data_root
    result = run_train(tmp_path, *_overrides(root), "--config.num_steps=6")
    assert "Traceback" not in result.stderr
    warnings = [line for line in result.stderr.splitlines() if "skipping a bad file" in line]
    assert len(warnings) == 1 and bad in warnings[0], result.stderr[-3000:]
    final = result.stderr.strip().splitlines()[-1]
    assert final.startswith(f"skipped 1 bad file(s) mid-run (the pre-run scan did not see "
                            f"them fail): {bad}; fix or delete them"), result.stderr[-3000:]
    listed = (tmp_path / "skipped_files.txt").read_text().splitlines()
    assert [line.split("\t")[0] for line in listed] == [bad]


def _records(workdir) -> list[dict]:
    with open(workdir / "metrics.jsonl") as f:
        return [json.loads(line) for line in f]


def _last_logged_step(workdir) -> int:
    try:
        lines = (workdir / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(line)["step"] for line in lines[:-1]]  # the last may be half-written
    return max(steps, default=0)


@pytest.mark.slow  # three runs
def test_kill9_and_resume_with_a_skipped_file_equals_the_uninterrupted_run(tmp_path,
                                                                           data_root):
    root, bad = data_root
    overrides = [*_overrides(root), "--config.num_steps=80"]
    reference = tmp_path / "reference"
    run_train(reference, *overrides)

    interrupted = tmp_path / "interrupted"
    proc = start_and_signal(interrupted, *overrides, sig=signal.SIGKILL,
                            ready=lambda: _last_logged_step(interrupted) >= 12,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert proc.wait() == -signal.SIGKILL, "the run must be killed mid-training"
    resumed = run_train(interrupted, *overrides)
    assert "resuming from the checkpoint" in resumed.stdout
    assert bad in resumed.stderr.strip().splitlines()[-1]
    assert _records(interrupted) == _records(reference)
