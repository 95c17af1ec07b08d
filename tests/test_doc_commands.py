"""Every shell command in the README and docs/ runs as written (with smoke settings).

Each document's commands run in order, in a scratch directory that links to the
repository's folders, so a command can use what an earlier one wrote (train, then
evaluate). `tests/doc_commands.py` says what counts as a command and how it is shrunk to a
smoke run. A command shown with its output (``$ cmd`` then ``error: ...``) must print that
output, and fail when the output is an error. The files a user brings (their own images, a
weights file) are made here first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from doc_commands import extract, smoke_version
from PIL import Image

from launch.local import flags_without_device_count

REPO = Path(__file__).resolve().parents[1]
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINKED = ("configs", "docs", "launch", "benchmarks")
# Documents read after another one, in its scratch directory (they use the workdirs it makes).
READ_AFTER = {"docs/outputs.md": "README.md"}
# Documents whose commands are several trainings (minutes on 2 cores): run before a stop, not
# in CI's 20-minute budget. Their commands go through CLI paths that other tests cover in CI
# (the README's: tests/test_train_e2e.py, test_predict_evaluate.py, test_launch_local.py;
# docs/tpu_vm.md's: test_launch_tpu_vm.py, test_launch_tpu_run.py, test_gcs_workdir.py).
SLOW = {"README.md", "docs/explain.md", "docs/weights.md", "docs/tpu_vm.md"}


def _name(document: Path) -> str:
    return str(document.relative_to(REPO))


def _groups() -> list:
    """One test per document that has commands, with the documents read after it."""
    groups = []
    for document in DOCUMENTS:
        if _name(document) in READ_AFTER:
            continue
        members = [document, *(REPO / later for later, first in READ_AFTER.items()
                               if first == _name(document))]
        if any(smoke_version(c, REPO).argv for d in members for c in extract(d, REPO)):
            marks = [pytest.mark.slow] if _name(document) in SLOW else []
            groups.append(pytest.param(members, id=_name(document), marks=marks))
    return groups


def _user_digits(directory: Path, data_dir: str) -> None:
    """A user's own digit images: a few test digits as PNG files."""
    from vision_jax.data.sources import open_source

    source, _ = open_source("builtin:digits", "test", data_dir=data_dir)
    directory.mkdir()
    for i in range(4):
        image = np.asarray(source[i]["image"])
        Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(
            directory / f"digit{i}.png")


def _torchvision_resnet50(path: Path) -> None:
    """A torchvision ResNet-50 state dict as .safetensors (seeded weights, made without torch)."""
    import json

    from safetensors.numpy import save_file

    sys.path.insert(0, str(REPO / "tests" / "reference"))
    import torch_seeded

    with np.load(REPO / "tests" / "reference" / "torch_resnet50.npz") as data:
        names = [str(name) for name in data["names"]]
        shapes = [tuple(shape) for shape in json.loads(str(data["shapes"]))]
    save_file(torch_seeded.seeded_state_dict(names, shapes), str(path))


def _course_keras_convnet(path: Path) -> None:
    """The course's Keras MNIST convnet (untrained), saved as a .keras file, in a subprocess
    (Keras on the JAX backend is a test extra)."""
    script = (
        "import os, sys; os.environ['KERAS_BACKEND'] = 'jax'\n"
        "import keras; L = keras.layers\n"
        "keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, 3, activation='relu'),"
        " L.MaxPooling2D(2), L.Conv2D(64, 3, activation='relu'), L.MaxPooling2D(2),"
        " L.Conv2D(128, 3, activation='relu'), L.Flatten(),"
        " L.Dense(10, activation='softmax')]).save(sys.argv[1])\n")
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=300,
                   env={**os.environ, "JAX_PLATFORMS": "cpu"})


USER_FILES = {  # name in a command -> how the test makes it in the scratch directory
    "my_digits/": _user_digits,
    "resnet50.safetensors": lambda path, data_dir: _torchvision_resnet50(path),
    "convnet.keras": lambda path, data_dir: _course_keras_convnet(path),
}


def _environment(data_dir: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(JAX_PLATFORMS="cpu", MPLBACKEND="Agg", PYTHONUNBUFFERED="1",
               TFDS_DATA_DIR=data_dir)  # built-in datasets are generated once, there
    env["XLA_FLAGS"] = " ".join(flags_without_device_count(env))
    return env


@pytest.mark.parametrize("documents", _groups())
def test_every_command_of_the_document_runs(documents, tmp_path, digits_data_dir):
    scratch = tmp_path
    for name in LINKED:
        (scratch / name).symlink_to(REPO / name)
    commands = [c for document in documents for c in extract(document, REPO)]
    text = " ".join(c.text for c in commands)
    for name, make in USER_FILES.items():
        if name.rstrip("/") in text:
            make(scratch / name.rstrip("/"), digits_data_dir)
    ran, skipped = 0, []
    for command in commands:
        smoke = smoke_version(command, scratch)
        if smoke.argv is None:
            skipped.append(f"{command.source}: {smoke.reason}")
            continue
        argv = [sys.executable if smoke.argv[0] == "python" else smoke.argv[0],
                *smoke.argv[1:]]
        argv = [sys.executable if word == "python" and i > 0 and argv[i - 1] == "--" else word
                for i, word in enumerate(argv)]
        start = time.monotonic()
        result = subprocess.run(argv, cwd=scratch, env=_environment(digits_data_dir),
                                capture_output=True, text=True, timeout=900)
        print(f"{command.source}: exit {result.returncode} in {time.monotonic() - start:.0f} s",
              flush=True)
        output = result.stdout + result.stderr
        where = f"{command.source}: {command.text}\nran: {' '.join(smoke.argv)}"
        if command.expected_output:
            for line in command.expected_output:
                assert line in output, f"{where}\nexpected {line!r} in:\n{output[-3000:]}"
            if command.expected_output[0].startswith("error:"):
                assert result.returncode != 0, where
        else:
            assert result.returncode == 0, f"{where}\nexit {result.returncode}:\n{output[-4000:]}"
        ran += 1
    print(f"\n{[_name(d) for d in documents]}: {ran} commands ran; skipped: {skipped or 'none'}")
    assert ran > 0
