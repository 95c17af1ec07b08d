"""The wheel: built from the repository, installed into a fresh venv, it trains the smoke
config from a directory outside the checkout with ``auto`` reading the shipped kernel table.

Offline: the wheel is built without build isolation, and the fresh venv reaches the
dependencies through a ``.pth`` file naming this venv's site-packages (no download); the
wheel itself is installed with ``--no-deps``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What a built wheel must not see of the checkout, for a clean build.
_SKIP = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "results", ".*")


def _run(args: list, cwd: Path, env: dict | None = None, timeout: int = 120) -> str:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=timeout, check=False)
    assert result.returncode == 0, (args, result.stdout[-2000:], result.stderr[-3000:])
    return result.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict]:
    """(python of a fresh venv holding the wheel, an environment without the checkout)."""
    # Nothing of the checkout may leak in: the tests' PYTHONPATH names the repository root
    # (conftest.py), where an editable install leaves vision_jax.egg-info.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(JAX_PLATFORMS="cpu", MPLBACKEND="Agg")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for name in ("vision_jax", "configs", "launch", "benchmarks"):
        shutil.copytree(ROOT / name, source / name, ignore=_SKIP)
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
          "--no-index", "-q", "-w", dist, source], cwd=tmp, env=env, timeout=300)
    [wheel] = dist.glob("vision_jax-*.whl")

    env_dir = tmp / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    fresh_site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                           cwd=tmp, env=env).strip())
    (fresh_site / "shared_deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
          "-q", wheel], cwd=tmp, env=env)
    return python, env, fresh_site


def test_wheel_installs_only_the_library_and_its_kernel_table(installed, tmp_path):
    python, env, fresh_site = installed
    listing = _run([sys.executable, "-m", "pip", "--python", python, "show", "-f",
                    "vision_jax"], cwd=tmp_path, env=env)
    files = [line.strip() for line in listing.split("Files:", 1)[1].splitlines() if line.strip()]
    top_level = {f.split("/", 1)[0] for f in files}
    assert not top_level & {"configs", "launch", "benchmarks"}, top_level
    assert "vision_jax/ops/auto_table.json" in files
    assert not {p.name for p in fresh_site.iterdir()} & {"configs", "launch", "benchmarks"}
    where = _run([python, "-c", "import vision_jax.ops.auto_table as t; print(t.source_path());"
                  "print(len(t.read_records()))"], cwd=tmp_path, env=env).split()
    assert Path(where[0]).is_relative_to(fresh_site) and int(where[1]) > 0


def test_wheel_trains_the_smoke_config_with_auto_reading_the_shipped_table(
        installed, tmp_path, digits_data_dir):
    python, env, fresh_site = installed
    workdir = tmp_path / "run"
    # Batch 128: the MNIST convnet's shapes the shipped table measured on CPU.
    _run([python, "-m", "vision_jax.train", "--config", f"{ROOT}/configs/mnist_cnn.py:smoke",
          "--workdir", workdir, "--config.num_steps=2", "--config.batch_size=128",
          f"--config.data_dir={digits_data_dir}", "--config.progress_bar=False"],
         cwd=tmp_path, env=env, timeout=300)
    document = json.loads((workdir / "kernels.json").read_text())
    table = {(r["backend"], r.get("op", "conv2d"), r["signature"]): r["best_impl"]
             for r in json.loads((fresh_site / "vision_jax/ops/auto_table.json").read_text())}
    from_table = [c for c in document["choices"] if c["source"] == "table"]
    assert from_table, document
    for choice in from_table:
        assert table[(document["backend"], choice["op"], choice["signature"])] == choice["impl"]
    assert any(c["op"] == "conv2d" and "/" in c["layer"] for c in from_table), from_table
