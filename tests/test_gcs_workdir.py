"""`--workdir gs://bucket/run` against a real GCS API (the emulator in gcs_emulator.py):
a run writes everything to the bucket, a kill -9 resumes from it with the same metrics line
for line, evaluate/predict read it, two processes write one sharded checkpoint there that
one process resumes, and storage that cannot be written is a one-line error."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from etils import epath
from gcs_emulator import gcs  # noqa: F401 - the fixture
from PIL import Image
from train_cli import REPO, cpu_env, run_train, train_command

# Long enough to kill mid-run; checkpoints every 10 steps, evaluation twice.
OVERRIDES = ["--config.num_steps=40", "--config.checkpoint_every_steps=10",
             "--config.log_every_steps=5", "--config.eval_every_steps=20"]


def _records(workdir: str) -> list[dict]:
    text = epath.Path(workdir, "metrics.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def _committed_steps(workdir: str) -> list[int]:
    """Steps orbax finished: on GCS it marks each with commit_success.txt (no rename)."""
    directory = epath.Path(workdir, "checkpoints")
    if not directory.exists():
        return []
    return sorted(int(p.name) for p in directory.iterdir()
                  if p.name.isdigit() and (p / "commit_success.txt").exists())


@pytest.fixture(scope="module")
def bucket_run(gcs, digits_data_dir):  # noqa: F811
    workdir = gcs.new_dir()
    result = run_train(workdir, f"--config.data_dir={digits_data_dir}", *OVERRIDES)
    return workdir, json.loads(result.stdout.strip().splitlines()[-1])


def test_a_run_writes_everything_to_the_bucket(bucket_run):
    workdir, final = bucket_run
    root = epath.Path(workdir)
    assert json.loads((root / "config.json").read_text())["num_steps"] == 40
    records = _records(workdir)
    assert [r["step"] for r in records if "train/loss" in r] == list(range(5, 41, 5))
    assert [r["step"] for r in records if "eval/accuracy" in r] == [20, 40]
    assert records[-1]["eval/accuracy"] == pytest.approx(final["eval/accuracy"])
    assert any(p.name.startswith("events.out.tfevents") for p in (root / "tensorboard").iterdir())
    for name in ("training_curves.png", "eval_confusion_matrix.png"):
        assert (root / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = json.loads((root / "eval_classification_report.json").read_text())
    assert report["accuracy"] == pytest.approx(final["eval/accuracy"])
    assert json.loads((root / "kernels.json").read_text())["choices"]
    assert _committed_steps(workdir) == [20, 30, 40]  # keep_checkpoints=3


def test_kill9_then_rerun_resumes_from_the_bucket_with_identical_metrics(
        gcs, bucket_run, digits_data_dir):  # noqa: F811
    reference, _ = bucket_run
    workdir = gcs.new_dir()
    overrides = [f"--config.data_dir={digits_data_dir}", *OVERRIDES]
    proc = subprocess.Popen(train_command(workdir, *overrides), cwd=REPO, env=cpu_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 400
    while time.time() < deadline and not _committed_steps(workdir) and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the run must still be training when killed"
    killed_at = max(_committed_steps(workdir))
    assert 10 <= killed_at < 40

    result = run_train(workdir, *overrides)
    assert f"resuming from the checkpoint at step {killed_at}" in result.stdout
    assert _records(workdir) == _records(reference)


def test_evaluate_and_predict_read_the_bucket(bucket_run, tmp_path):
    workdir, final = bucket_run
    out = subprocess.run([sys.executable, "-m", "vision_jax.evaluate", f"--workdir={workdir}"],
                         cwd=REPO, env=cpu_env(), capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    again = json.loads(out.stdout.strip().splitlines()[-1])
    assert again["step"] == 40
    assert again["test/accuracy"] == pytest.approx(final["eval/accuracy"], abs=1e-7)
    assert epath.Path(workdir, "test_classification_report.json").exists()

    image = tmp_path / "digit.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (28, 28), np.uint8)).save(image)
    out = subprocess.run([sys.executable, "-m", "vision_jax.predict", f"--workdir={workdir}",
                          f"--images={image}"], cwd=REPO, env=cpu_env(), capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    predictions = json.loads(epath.Path(workdir, "predictions", "predictions.json").read_text())
    assert predictions[0]["image"] == "digit.png" and len(predictions[0]["top"]) == 5


def test_a_missing_bucket_is_a_one_line_error(gcs, digits_data_dir):  # noqa: F811
    workdir = "gs://no-such-bucket/run"
    result = run_train(workdir, f"--config.data_dir={digits_data_dir}", check=False,
                       env_extra={"JAX_LOG_COMPILES": "1"})  # logs every compilation
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Compiling" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: --workdir={workdir} is not writable (")
    assert "check that the bucket exists" in last
    assert "Traceback" not in result.stderr


def test_unreachable_storage_is_a_one_line_error(gcs, digits_data_dir):  # noqa: F811
    from gcs_emulator import _free_port, endpoint_env

    port = _free_port()
    nobody = endpoint_env(f"http://127.0.0.1:{port}")  # nothing listens there
    result = run_train(gcs.new_dir(), f"--config.data_dir={digits_data_dir}", env_extra=nobody,
                       check=False)
    assert result.returncode == 2, result.stderr[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: --workdir=gs://") and "is not writable" in last
    # Said by one TCP connect, not after gcsfs's half minute of retries.
    assert f"cannot connect to 127.0.0.1:{port}" in last
    assert "Traceback" not in result.stderr


def test_the_reachability_check_asks_the_server_gcsfs_would_use(gcs, monkeypatch):  # noqa: F811
    from gcs_emulator import _free_port

    from vision_jax import paths

    for name in paths._PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs.url)
    host, port = paths.storage_endpoint(gcs.new_dir())
    assert f"http://{host}:{port}" == gcs.url
    assert paths._unreachable_endpoint(gcs.new_dir()) is None  # the emulator listens
    paths.check_writable(epath.Path(gcs.new_dir()), "--workdir")

    closed = _free_port()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{closed}")
    assert paths._unreachable_endpoint("gs://bucket/run").startswith(
        f"cannot connect to 127.0.0.1:{closed}: ConnectionRefusedError")
    monkeypatch.delenv("STORAGE_EMULATOR_HOST")
    assert paths.storage_endpoint("gs://bucket/run") == ("storage.googleapis.com", 443)
    assert paths.storage_endpoint("/tmp/run") is None
    # Behind a proxy the server is not this machine's to reach directly: gcsfs decides.
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    assert paths.storage_endpoint("gs://bucket/run") is None


@pytest.mark.slow
def test_two_processes_write_one_checkpoint_to_the_bucket_and_one_process_resumes(
        gcs, digits_data_dir):  # noqa: F811
    workdir = gcs.new_dir()
    overrides = [f"--config.data_dir={digits_data_dir}", "--config.num_steps=4",
                 "--config.log_every_steps=2", "--config.eval_every_steps=4",
                 "--config.checkpoint_every_steps=4"]
    launcher = [sys.executable, "-m", "launch.local", "--processes", "2",
                "--devices-per-process", "4", "--", *train_command(workdir, *overrides)]
    result = subprocess.run(launcher, cwd=REPO, env=cpu_env(1), capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "must be storage every host shares" not in result.stderr  # gs:// is shared
    assert _committed_steps(workdir) == [4]
    state = epath.Path(workdir, "checkpoints", "4", "state")
    assert {p.name for p in state.iterdir() if p.name.startswith("ocdbt.process_")} == {
        "ocdbt.process_0", "ocdbt.process_1"}, "each process writes its own shards"

    resumed = run_train(workdir, *overrides[:1], "--config.num_steps=6", *overrides[2:],
                        devices=8)
    assert "resuming from the checkpoint at step 4" in resumed.stdout
    assert [r["step"] for r in _records(workdir) if "train/loss" in r] == [2, 4, 6]


@pytest.mark.slow
def test_a_builtin_dataset_prepared_into_a_gs_data_dir_is_trained_from(gcs, tmp_path):  # noqa: F811
    data_dir = gcs.new_dir("tensorflow_datasets")
    # The first VM generates builtin:digits in its mirror of the data_dir and uploads it.
    run_train(gcs.new_dir(), f"--config.data_dir={data_dir}", "--config.num_steps=2",
              env_extra={"VJ_DATA_CACHE": str(tmp_path / "vm1")})
    prepared = epath.Path(data_dir, "vision_jax_digits", "1.0.0")
    names = {p.name for p in prepared.iterdir()}
    assert {"dataset_info.json", "vision_jax_digits-train.array_record-00000-of-00001",
            "vision_jax_digits-test.array_record-00000-of-00001"} <= names
    # A second VM (an empty cache) reads it from the bucket as a prepared TFDS dataset:
    # `tfds:` never generates, so this run can only train on what the bucket holds.
    run_train(gcs.new_dir(), "--config.dataset=tfds:vision_jax_digits",
              f"--config.data_dir={data_dir}", "--config.num_steps=2",
              env_extra={"VJ_DATA_CACHE": str(tmp_path / "vm2")})
    mirrored = tmp_path / "vm2" / "gs" / data_dir.removeprefix("gs://") / "vision_jax_digits"
    assert (mirrored / "1.0.0" / "vision_jax_digits-train.array_record-00000-of-00001"
            ).read_bytes() == (prepared / "vision_jax_digits-train.array_record-00000-of-00001"
                               ).read_bytes()
