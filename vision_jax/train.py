"""Train a model from a config.

    python -m vision_jax.train --config configs/mnist_cnn.py --workdir runs/mnist
    python -m vision_jax.train --config configs/mnist_cnn.py:smoke --workdir /tmp/smoke \
        --config.batch_size=32

Running the same command again resumes from the workdir's latest checkpoint.
"""

from __future__ import annotations

import json

from absl import app, flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Config file, optionally with an argument: configs/x.py:smoke",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and plots.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from vision_jax.cli import start_process

    start_process()
    # Imported after initialisation: nothing may touch the JAX backend before it.
    from vision_jax.cli import user_errors_exit
    from vision_jax.training.loop import train_and_evaluate

    with user_errors_exit():
        metrics = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    print(json.dumps(metrics))


if __name__ == "__main__":
    from vision_jax.cli import parse_flags

    app.run(main, flags_parser=parse_flags)
