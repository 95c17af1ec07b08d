"""What the entry points share: turning known failures into one-line errors."""

from __future__ import annotations

import contextlib
import difflib
import os
import sys

from vision_jax.errors import ConfigError, StoppedBySignal
from vision_jax.training.checkpoint import CheckpointError

# Failures whose message already says what to fix: print it, not a traceback.
USER_ERRORS = (ConfigError, CheckpointError, FileNotFoundError)


@contextlib.contextmanager
def user_errors_exit():
    """Prints `error: <message>` and exits with status 2 on a user error; a run stopped by a
    signal (its checkpoint saved) exits with 128 + the signal's number."""
    try:
        yield
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    except StoppedBySignal as e:
        sys.exit(e.exit_code)


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with config-file and `--config.<field>` mistakes as one-line errors.

    The config file is loaded here first (`vision_jax.config_file`): a missing file, a syntax
    error, an exception in ``get_config`` or a non-ConfigDict result is one line. Then
    ml_collections raises AttributeError/KeyError (with a traceback) for an override of a
    field that does not exist; the field is found by walking each override's path through
    the config file's own ConfigDict, then named with a "did you mean".
    """
    from absl import flags

    config_arg = _config_argument(argv) if "config" in flags.FLAGS else None
    config = None
    if config_arg:
        _put_config_root_on_path(config_arg)
        from vision_jax.config_file import load_config_file

        try:
            config = load_config_file(config_arg)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError):
        message = _unknown_override(config, argv) if config is not None else None
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def _config_argument(argv: list[str]) -> str | None:
    """The value of ``--config=FILE[:ARG]`` (or ``--config FILE``) in `argv`."""
    for index, arg in enumerate(argv):
        if arg.startswith("--config="):
            return arg.split("=", 1)[1]
        if arg == "--config" and index + 1 < len(argv):
            return argv[index + 1]
    return None


def _put_config_root_on_path(config_arg: str) -> None:
    """Config files live in ``<root>/configs/`` and import ``configs.common``: make that
    importable from any working directory."""
    directory = os.path.dirname(os.path.abspath(config_arg.split(":", 1)[0]))
    if os.path.basename(directory) == "configs" and os.path.dirname(directory) not in sys.path:
        sys.path.insert(0, os.path.dirname(directory))


def _unknown_override(config, argv: list[str]) -> str | None:
    """``config.a.b is not a known field; did you mean config.a.c?`` for the first
    ``--config.a.b=...`` override whose path the config file's ConfigDict lacks."""
    for override in argv:
        if not override.startswith("--config."):
            continue
        keys = override[2:].split("=", 1)[0].split(".")[1:]
        node, prefix = config, "config"
        for key in keys:
            known = list(node.keys()) if hasattr(node, "keys") else []
            if key not in known:
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"; did you mean {prefix}.{close[0]}?" if close else ""
                return f"{prefix}.{key} is not a known field{hint}"
            node, prefix = node[key], f"{prefix}.{key}"
    return None


def quiet_library_logs() -> None:
    """Orbax and friends log every checkpoint step at INFO through absl, and TFDS warns
    about things a user cannot act on (`vision_jax.quiet`); keep the console to our
    progress bar and warnings unless the user passed -v/--verbosity."""
    from absl import flags
    from absl import logging as absl_logging

    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)
        from vision_jax.quiet import quiet_third_party

        quiet_third_party()


def start_process() -> None:
    """What every entry point does first: quiet library logs, then join the
    multi-process job (a no-op for one process) before anything touches JAX."""
    from vision_jax.parallel import distributed

    quiet_library_logs()
    distributed.initialize()
