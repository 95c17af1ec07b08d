"""Wall time and test accuracy of `configs/mnist_cnn.py` against the same
convnet in Keras, side by side on the same machine and the same digits split.

Besides each whole run's wall time, the figure compared is the steady-state time per epoch:
the median gap between consecutive epoch ends, which leaves out start-up and compilation
(ours: the arrival of the per-epoch evaluation line on stdout, so our evaluation and
checkpoint are inside the epoch; Keras: an `on_epoch_end` callback, with no evaluation).

    python -m benchmarks.mnist_vs_keras [--keras_epochs 10] [--out benchmarks/results]

Keras is not a dependency of vision_jax: `pip install keras==3.15.1` first
(it runs on the JAX backend here). Without it, only our run is measured.
Writes `<out>/mnist_vs_keras.json` and `.md`.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

# Keras 3 defaults to TensorFlow; the baseline runs on JAX like we do.
os.environ.setdefault("KERAS_BACKEND", "jax")

_KERAS_EPOCHS = flags.DEFINE_integer("keras_epochs", 10, "Epochs for the Keras baseline.")
_KERAS_BATCH = flags.DEFINE_integer("keras_batch_size", 32, "Keras batch size (its default).")
_OUT = flags.DEFINE_string("out", "benchmarks/results", "Output directory.")
_CONFIG = flags.DEFINE_string("config", "configs/mnist_cnn.py", "Our config.")
_DATA_DIR = flags.DEFINE_string("data_dir", "", "TFDS data dir for builtin:digits.")


def load_digits(data_dir: str | None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The built-in digits' train and test splits as (images uint8 NHWC, labels)."""
    from vision_jax.data.sources import open_source

    out = {}
    for split in ("train", "test"):
        source, _ = open_source("builtin:digits", split, data_dir=data_dir or None)
        records = [source[i] for i in range(len(source))]
        out[split] = (np.stack([r["image"] for r in records]),
                      np.asarray([r["label"] for r in records]))
    return out


def run_keras(data, epochs: int, batch_size: int) -> dict:
    """The course's Keras convnet: Conv32-Pool-Conv64-Pool-Conv128-Flatten-Dense10, RMSprop."""
    import keras

    x_train = data["train"][0].astype("float32") / 255.0
    x_test = data["test"][0].astype("float32") / 255.0
    inputs = keras.Input(shape=x_train.shape[1:])
    x = keras.layers.Conv2D(32, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(64, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(128, 3, activation="relu")(x)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(10, activation="softmax")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    epoch_ends: list[float] = []
    timer = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: epoch_ends.append(time.perf_counter()))
    start = time.perf_counter()
    model.fit(x_train, data["train"][1], epochs=epochs, batch_size=batch_size, verbose=0,
              callbacks=[timer])
    wall = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, data["test"][1], verbose=0)
    return {"framework": f"keras {keras.__version__} (jax backend)", "epochs": epochs,
            "batch_size": batch_size, "train_wall_s": wall, "test_accuracy": float(accuracy),
            "epoch_s": steady_epoch_seconds(epoch_ends)}


def steady_epoch_seconds(epoch_ends: list[float]) -> float:
    """The median gap between consecutive epoch ends (the first epoch, which compiles, is
    not a gap); NaN with fewer than two epochs."""
    gaps = np.diff(epoch_ends)
    return float(np.median(gaps)) if len(gaps) else float("nan")


def _eval_times(metrics_path: str, process: subprocess.Popen) -> list[float]:
    """When each evaluation record reaches `metrics_path` (the trainer appends one per
    epoch), polled every 20 ms until `process` ends."""
    times: list[float] = []
    seen = 0
    while True:
        running = process.poll() is None
        if os.path.exists(metrics_path):
            with open(metrics_path) as f:
                evals = sum('"eval/accuracy"' in line for line in f)
            times += [time.perf_counter()] * (evals - seen)
            seen = evals
        if not running:
            return times
        time.sleep(0.02)


def run_ours(config: str, data_dir: str) -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        cmd = [sys.executable, "-m", "vision_jax.train", f"--config={config}",
               f"--workdir={workdir}", "--config.progress_bar=False"]
        if data_dir:
            cmd.append(f"--config.data_dir={data_dir}")
        start = time.perf_counter()
        # Output to files, not pipes: nothing reads a pipe while the run goes on.
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            process = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
            epoch_ends = _eval_times(os.path.join(workdir, "metrics.jsonl"), process)
            wall = time.perf_counter() - start
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if process.returncode != 0:
            raise RuntimeError(f"our run failed:\n{stderr[-3000:]}")
        final = json.loads(stdout.strip().splitlines()[-1])
        saved = json.load(open(os.path.join(workdir, "config.json")))
    return {"framework": "vision_jax", "config": config, "epochs": saved["num_epochs"],
            "batch_size": saved["batch_size"], "train_wall_s": wall,
            "test_accuracy": final["eval/accuracy"],
            "epoch_s": steady_epoch_seconds(epoch_ends),
            "note": "train wall: the whole command (start-up, compilation, per-epoch "
                    "evaluation and checkpoints); epoch: evaluation and checkpoint included"}


def main(argv):
    del argv
    import jax

    runs = [run_ours(_CONFIG.value, _DATA_DIR.value)]
    try:
        import keras  # noqa: F401
    except ImportError:
        print("keras is not installed: pip install keras==3.15.1 for the baseline")
    else:
        runs.append(run_keras(load_digits(_DATA_DIR.value), _KERAS_EPOCHS.value,
                              _KERAS_BATCH.value))
    record = {"machine": platform.processor() or platform.machine(),
              "cpu_count": os.cpu_count(), "jax_version": jax.__version__, "runs": runs}
    os.makedirs(_OUT.value, exist_ok=True)
    with open(os.path.join(_OUT.value, "mnist_vs_keras.json"), "w") as f:
        json.dump(record, f, indent=1)
    lines = ["| framework | epochs | batch | train wall (s) | s per epoch (steady) | "
             "test accuracy |", "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['framework']} | {r['epochs']:g} | {r['batch_size']} | "
                     f"{r['train_wall_s']:.1f} | {r['epoch_s']:.2f} | "
                     f"{r['test_accuracy']:.4f} |")
    table = "\n".join(lines)
    with open(os.path.join(_OUT.value, "mnist_vs_keras.md"), "w") as f:
        f.write(table + "\n")
    print(table)


if __name__ == "__main__":
    app.run(main)
