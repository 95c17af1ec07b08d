"""Train a model from a config.

    python -m vision_jax.train --config configs/mnist_cnn.py --workdir runs/mnist
    python -m vision_jax.train --config configs/mnist_cnn.py:smoke --workdir /tmp/smoke \
        --config.batch_size=32

Running the same command again resumes from the workdir's latest checkpoint.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence

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

    try:
        with user_errors_exit():
            metrics = train_and_evaluate(_CONFIG.value, _WORKDIR.value)
    except KeyboardInterrupt:  # Ctrl-C before the loop's handler (which saves) is installed
        print("\ninterrupted before training started; nothing to save", file=sys.stderr)
        sys.exit(130)
    print(json.dumps(metrics))


def put_config_repository_on_path(argv: Sequence[str]) -> None:
    """Puts the folder holding the config file's ``configs/`` package on ``sys.path``, so a
    config may ``from configs import common`` whatever the working directory (an installed
    wheel ships no ``configs``)."""
    for index, arg in enumerate(argv):
        if arg.startswith("--config="):
            value = arg.split("=", 1)[1]
        elif arg == "--config" and index + 1 < len(argv):
            value = argv[index + 1]
        else:
            continue
        folder = os.path.dirname(os.path.abspath(value.split(":", 1)[0]))
        if os.path.basename(folder) == "configs" and os.path.dirname(folder) not in sys.path:
            sys.path.insert(0, os.path.dirname(folder))


if __name__ == "__main__":
    from vision_jax.cli import parse_flags

    put_config_repository_on_path(sys.argv)
    app.run(main, flags_parser=parse_flags)
