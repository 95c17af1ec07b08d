"""Fixtures shared across test files, and the repository root on the import path.

configs/, launch/ and benchmarks/ are repository folders, not installed packages (only
vision_jax is), so the tests, and the subprocesses they start (scripts under tests/,
`python -m` from other working directories), find them through the repository root.
"""

import os
import sys
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = str(Path(__file__).resolve().parents[1])
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (REPO_ROOT, os.environ.get("PYTHONPATH", "")) if p)

# Most of the suite's time is XLA compiling the same few smoke models again in every
# subprocess run (the same train and eval steps, over and over). JAX's persistent compilation
# cache, shared by the pytest workers and every process they start, compiles each once. The
# cache key is the program and the compiler's version and options, so a hit is the executable
# a fresh compile would give; set JAX_COMPILATION_CACHE_DIR to choose another place.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "vision_jax_tests_xla_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")

# The rest is compiling too: the suite's programs are tiny (smoke models, a few steps on a
# few images), and LLVM's optimisation passes cost far more than they save on them. At level
# 0 XLA still runs every HLO pass (fusion, layout, sharding), only the machine-code
# optimisation is skipped, so results stay within the suite's tolerances. Measured on the
# 2-core CPU at load 3.5: a U-Net init under jit 18.3 -> 4.1 s, seed_cnn's 6.6 -> 1.4 s, one
# `jax.random.normal` 3.7 -> 0.6 s. Subprocesses inherit it (tests/train_cli.py keeps the
# flags it finds). Set XLA_FLAGS with an explicit level to test at another one.
TEST_XLA_FLAG = "--xla_backend_optimization_level=0"
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {TEST_XLA_FLAG}".strip()


@pytest.fixture(scope="session")
def digits_data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A TFDS data dir holding the prepared `builtin:digits` dataset (built once per session)."""
    from vision_jax.data.sources import prepare_builtin

    data_dir = str(tmp_path_factory.mktemp("tfds_data"))
    prepare_builtin("digits", data_dir)
    return data_dir
