"""Every mistake in a `--config` file is one `error:` line with exit status 2, naming the
file (and the line, where there is one), never a traceback: the issue's four cases (missing
file, syntax error, unknown `:arg`, `get_config` returning a dict) and their relatives."""

from __future__ import annotations

import pytest
from train_cli import run_train

CASES = {
    "syntax": ("def get_config(:\n    pass\n", "syntax.py:1: invalid syntax"),
    "dict": ("def get_config(arg=None):\n    return {'num_steps': 3}\n",
             "syntax.py: get_config returned a dict, not an ml_collections.ConfigDict"),
    "raises": ("import math\n\ndef get_config(arg=None):\n    return math.nope\n",
               "syntax.py:4: AttributeError: module 'math' has no attribute 'nope'"),
    "no get_config": ("CONFIG = 1\n", "syntax.py defines no get_config(arg=None) function"),
}


def _error_line(result) -> str:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr[-3000:]
    return lines[0]


def test_a_missing_config_file(tmp_path):
    line = _error_line(run_train(tmp_path / "w", config="configs/no_such.py", check=False))
    assert "configs/no_such.py is not a file" in line and "--config=" in line


@pytest.mark.parametrize("case", list(CASES))
def test_a_broken_config_file(tmp_path, case):
    source, expected = CASES[case]
    path = tmp_path / "syntax.py"
    path.write_text(source)
    line = _error_line(run_train(tmp_path / "w", config=str(path), check=False))
    assert expected in line


def test_an_unknown_config_argument(tmp_path):
    line = _error_line(run_train(tmp_path / "w", config="configs/mnist_cnn.py:smok",
                                 check=False))
    assert line == "error: configs/mnist_cnn.py: unknown argument 'smok'; use 'smoke' or none"
