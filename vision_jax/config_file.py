"""Loads a ``--config`` file once before absl does, to turn each way it can fail into one line.

ml_collections' config flag reports a missing file, a syntax error, an exception raised by
``get_config`` (the configs raise ValueError for an unknown ``:arg``) or a ``get_config``
that returns a plain dict as a 15-40 line traceback, or not at all. Loading the file here
first, the same way, finds the same problems and says each as ``error: <file>:<line>: ...``.
"""

from __future__ import annotations

import os
import traceback
import types

import ml_collections

from vision_jax.errors import ConfigError

EXAMPLE = "configs/mnist_cnn.py"


def _location(path: str, error: BaseException) -> str:
    """``path:line`` of the deepest frame inside the config file (else its path)."""
    target = os.path.abspath(path)
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__)
             if os.path.abspath(frame.filename) == target]
    return f"{path}:{lines[-1]}" if lines else path


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def load_config_file(config_arg: str) -> ml_collections.ConfigDict:
    """The ConfigDict ``FILE[:ARG]`` describes; a `ConfigError` line for every failure."""
    path, _, arg = config_arg.partition(":")
    if not os.path.isfile(path):
        where = "" if os.path.isabs(path) else f" (relative to {os.getcwd()})"
        raise ConfigError(f"--config: {path} is not a file{where}; give the path of a config "
                          f"file, e.g. --config={EXAMPLE}")
    with open(path, encoding="utf-8") as f:
        source = f.read()
    try:
        code = compile(source, path, "exec")
    except SyntaxError as e:
        shown = f" in {e.text.strip()!r}" if e.text and e.text.strip() else ""
        raise ConfigError(f"{path}:{e.lineno}: {e.msg}{shown}") from None
    module = types.ModuleType("_vision_jax_config_file")
    module.__file__ = os.path.abspath(path)
    try:
        exec(code, module.__dict__)  # noqa: S102 - a config file is code the user runs
        get_config = getattr(module, "get_config", None)
        if not callable(get_config):
            raise ConfigError(f"{path} defines no get_config(arg=None) function; a config "
                              f"file returns its ConfigDict from one (see {EXAMPLE})")
        config = get_config(arg) if arg else get_config()
    except ConfigError:
        raise
    except ValueError as e:  # the configs' own one-line messages (an unknown :arg)
        raise ConfigError(_first_line(e)) from None
    except Exception as e:  # noqa: BLE001 - any other bug in the file, located in it
        raise ConfigError(f"{_location(path, e)}: {type(e).__name__}: {_first_line(e)}") \
            from None
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(
            f"{path}: get_config returned a {type(config).__name__}, not an "
            "ml_collections.ConfigDict; start from vision_jax.training.defaults."
            "default_config() and return it")
    return config
