"""A config file may import its repository's shared config code (`from configs import ...`)
whatever the working directory: train.py puts the config's repository on sys.path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_a_config_imports_its_own_configs_package_from_any_cwd(tmp_path):
    configs = tmp_path / "elsewhere" / "configs"
    configs.mkdir(parents=True)
    (configs / "__init__.py").write_text("")
    (configs / "shared_for_test.py").write_text("IMAGE_SIZE = 28\n")
    (configs / "tiny.py").write_text(
        "from configs import shared_for_test\n"
        "from vision_jax.training.defaults import default_config\n\n\n"
        "def get_config():\n"
        "    config = default_config()\n"
        "    config.image_size = shared_for_test.IMAGE_SIZE\n"
        "    return config\n")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    # The config loads while the flags are parsed; an unknown override then stops the run
    # with a one-line error, before anything trains.
    result = subprocess.run(
        [sys.executable, "-m", "vision_jax.train", "--config", str(configs / "tiny.py"),
         "--workdir", str(tmp_path / "run"), "--config.no_such_field=1"],
        cwd=cwd, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 2, result.stderr[-2000:]
    assert "error: config.no_such_field is not a known field" in result.stderr
    assert "ModuleNotFoundError" not in result.stderr
