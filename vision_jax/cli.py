"""What the entry points share: turning known failures into one-line errors."""

from __future__ import annotations

import contextlib
import sys

from vision_jax.training.checkpoint import CheckpointError
from vision_jax.training.validate import ConfigError

# Failures whose message already says what to fix: print it, not a traceback.
USER_ERRORS = (ConfigError, CheckpointError, FileNotFoundError)


@contextlib.contextmanager
def user_errors_exit():
    """Prints `error: <message>` and exits with status 2 on a user error."""
    try:
        yield
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def parse_flags(argv: list[str]) -> list[str]:
    """absl flag parsing, with `--config.<field>` mistakes as one-line errors.

    ml_collections raises AttributeError/KeyError (with a traceback) for an
    override of a field that does not exist; absl reports bad values itself.
    """
    import re

    from absl import flags

    try:
        return flags.FLAGS(argv)
    except (AttributeError, KeyError) as e:
        text = str(e).replace("\\n", " ").replace("\\'", "'").strip("'\" ")
        match = re.search(r'Did you mean "([^"]+)" instead of "([^"]+)"', text)
        missing = match.group(2) if match else re.sub(r"[^\w].*$", "", text.strip("'\" "))
        # The override whose path names the missing key; absl does not say which it was.
        paths = [a.split("=")[0][2:] for a in argv if a.startswith("--config.")]
        field = next((p for p in paths if p.split(".")[-1] == missing or f".{missing}." in p),
                     f"config.{missing}")
        hint = f"; did you mean {field.rsplit('.', 1)[0]}.{match.group(1)}?" if match else ""
        print(f"error: {field} is not a known field{hint}", file=sys.stderr)
        sys.exit(2)
    except flags.Error as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


def quiet_library_logs() -> None:
    """Orbax and friends log every checkpoint step at INFO through absl; keep the
    console to our progress bar and warnings unless the user passed -v/--verbosity."""
    from absl import flags
    from absl import logging as absl_logging

    if not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)


def start_process() -> None:
    """What every entry point does first: quiet library logs, then join the
    multi-process job (a no-op for one process) before anything touches JAX."""
    from vision_jax.parallel import distributed

    quiet_library_logs()
    distributed.initialize()
