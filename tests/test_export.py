"""Imported models become workdirs, and workdirs leave the toolkit with equal outputs.

A real round trip: a Keras MNIST convnet -> ``python -m vision_jax.weights import`` -> a
workdir that ``python -m vision_jax.evaluate`` and the loop's `restore_experiment` read ->
``python -m vision_jax.export`` as safetensors, Keras "JSON + H5" and jax.export; every
step's outputs equal the Keras model's. VGG workdirs (flatten and average-pool heads) export to
Keras with equal outputs too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from flax import traverse_util  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from vision_jax import export, models  # noqa: E402
from vision_jax.errors import ConfigError  # noqa: E402
from vision_jax.training import loop  # noqa: E402
from vision_jax.weights import workdir  # noqa: E402

TOLERANCE = 1e-4


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True,
                          timeout=600)


def _relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(np.asarray(ours) - theirs).max() / np.abs(theirs).max())


@pytest.fixture(scope="module")
def imported(digits_data_dir, tmp_path_factory) -> dict:
    """A random Keras MNIST convnet imported through the command line."""
    base = tmp_path_factory.mktemp("export")
    keras.utils.set_random_seed(0)
    layers = keras.layers
    source = keras.Sequential([
        keras.Input((28, 28, 1)), layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(128, 3, activation="relu"), layers.Flatten(), layers.Dense(10)])
    path = str(base / "convnet.keras")
    source.save(path)
    run_dir = str(base / "run")
    result = _run("vision_jax.weights", "import", "--from", "keras", "--file", path, "--model",
                  "seed_cnn", "--workdir", run_dir, "--data_dir", digits_data_dir)
    assert result.returncode == 0, result.stderr
    images = np.random.default_rng(0).uniform(0, 1, (4, 28, 28, 1)).astype(np.float32)
    return {"source": source, "workdir": run_dir, "images": images, "file": path,
            "expected": np.asarray(source(images)), "data_dir": digits_data_dir}


def test_the_imported_workdir_restores_to_the_keras_outputs(imported):
    exp, state = loop.restore_experiment(imported["workdir"])
    assert exp.config.model_name == "seed_cnn" and int(state.step) == 0
    logits = exp.model.apply(state.variables(), imported["images"], train=False)
    assert _relative_difference(logits, imported["expected"]) < TOLERANCE


def test_evaluate_reads_the_imported_workdir(imported):
    result = _run("vision_jax.evaluate", "--workdir", imported["workdir"])
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["step"] == 0 and 0.0 <= metrics["test/accuracy"] <= 1.0


def test_importing_into_a_used_workdir_is_refused(imported):
    result = _run("vision_jax.weights", "import", "--from", "keras", "--file", imported["file"],
                  "--model", "seed_cnn", "--workdir", imported["workdir"], "--data_dir",
                  imported["data_dir"])
    assert result.returncode == 2
    assert result.stderr.strip().endswith("already holds a checkpoint; import into a new "
                                          "--workdir")


def test_a_wrong_model_on_the_command_line_is_one_line(imported, tmp_path):
    result = _run("vision_jax.weights", "import", "--from", "keras", "--file", imported["file"],
                  "--model", "vgg11", "--workdir", str(tmp_path / "w"))
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: ")
    assert "missing tensor 'block1_conv1/0'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_keras_h5_export_loads_back_into_keras_with_equal_outputs(imported, tmp_path):
    out = str(tmp_path / "keras")
    result = _run("vision_jax.export", "--workdir", imported["workdir"], "--format",
                  "keras_h5", "--out", out)
    assert result.returncode == 0, result.stderr
    with open(os.path.join(out, "model.json")) as f:
        rebuilt = keras.models.model_from_json(f.read())
    rebuilt.load_weights(os.path.join(out, "model.weights.h5"))
    full = keras.models.load_model(os.path.join(out, "model.h5"))
    for model in (rebuilt, full):
        difference = _relative_difference(model(imported["images"]), imported["expected"])
        assert difference < TOLERANCE


def test_safetensors_export_rebuilds_the_model(imported, tmp_path):
    paths = export.export(imported["workdir"], "safetensors", str(tmp_path))
    with open(paths[1]) as f:
        definition = json.load(f)
    model = models.create(definition["model_name"], num_classes=definition["num_classes"],
                          **definition["model_kwargs"])
    variables = traverse_util.unflatten_dict(load_file(paths[0]), sep="/")
    logits = model.apply(variables, imported["images"], train=False)
    assert definition["input_shape"] == [28, 28, 1]
    assert _relative_difference(logits, imported["expected"]) < TOLERANCE


def test_jax_export_serialises_the_forward_pass(imported, tmp_path):
    paths = export.export(imported["workdir"], "jax_export", str(tmp_path), batch_size=4)
    with open(paths[0], "rb") as f:
        forward = jax.export.deserialize(bytearray(f.read()))
    logits = forward.call(imported["images"])
    assert _relative_difference(logits, imported["expected"]) < TOLERANCE


# Both slow (a training and a Keras VGG each); the convnet export tests above run in CI.
@pytest.mark.parametrize("head, image_size", [
    pytest.param("flatten", 64, marks=pytest.mark.slow),
    pytest.param("gap", 32, marks=pytest.mark.slow)])
def test_a_vgg_workdir_exports_to_keras_with_equal_outputs(digits_data_dir, tmp_path, head,
                                                           image_size):
    options = {"num_classes": 10, "head": head, "hidden_units": 32}
    model = models.create("vgg11", **options)
    images = np.random.default_rng(1).uniform(0, 1, (2, image_size, image_size, 3))
    variables = model.init(jax.random.key(3), images[:1], train=False)
    config = workdir.workdir_config("keras", "vgg11", options, "builtin:digits",
                                    digits_data_dir, image_size, 3)
    workdir.write_workdir(str(tmp_path / "run"), config, variables)
    paths = export.export(str(tmp_path / "run"), "keras_h5", str(tmp_path / "out"))
    rebuilt = keras.models.load_model(paths[2])
    expected = np.asarray(model.apply(variables, images, train=False))
    assert _relative_difference(rebuilt(images.astype(np.float32)), expected) < TOLERANCE


def test_keras_h5_refuses_a_model_keras_cannot_hold(digits_data_dir, tmp_path):
    model = models.create("vgg11_bn", num_classes=10, hidden_units=32)
    variables = model.init(jax.random.key(0), np.zeros((1, 32, 32, 3)), train=False)
    config = workdir.workdir_config("torch", "vgg11_bn", {"num_classes": 10, "hidden_units": 32},
                                    "builtin:digits", digits_data_dir, 32, 3)
    workdir.write_workdir(str(tmp_path / "run"), config, variables)
    with pytest.raises(ConfigError, match="exports seed_cnn and the VGGs without "
                       "batch norm, not vgg11_bn; use --format safetensors"):
        export.export(str(tmp_path / "run"), "keras_h5", str(tmp_path / "out"))
