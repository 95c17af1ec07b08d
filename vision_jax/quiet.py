"""Keeps third-party messages a user cannot act on off the console (``--verbosity`` keeps them).

- TFDS warns "OpenCV is not installed" on the first decoded image (PIL decodes correctly,
  the package is not needed), and "Variant folder ... has no dataset_info.json" while it
  prepares a built-in dataset the first time;
- preparing a built-in dataset prints TFDS's "Downloading and preparing dataset Unknown
  size ..." banner and its progress bars, for data generated locally in seconds; one line
  of ours replaces them.

Gloo's "[Gloo] Rank N is connected to ..." lines of a multi-process CPU run are written by
C++ straight to the process's file descriptor, below anything Python can filter in that
process; `launch.local`, which reads its children's output, drops them (unless the command
passes --verbosity).
"""

from __future__ import annotations

import logging
import re

# Messages dropped from Python / absl logging, matched anywhere in the formatted message.
NOISE = (
    re.compile(r"OpenCV is not installed"),
    re.compile(r"Variant folder .* has no dataset_info\.json"),
)


class NoiseFilter(logging.Filter):
    """Drops the records whose message matches one of `NOISE`."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is not ours to judge
            return True
        return not any(pattern.search(message) for pattern in NOISE)


_FILTER = NoiseFilter()


def _quiet_tfds_preparation() -> None:
    try:
        import tensorflow_datasets as tfds
        from tensorflow_datasets.core import dataset_builder
    except ImportError:
        return
    tfds.disable_progress_bar()
    builder = dataset_builder.DatasetBuilder
    # Private hooks that print the banner (TFDS's own comment: "Print is intentional").
    if hasattr(builder, "_log_download_bytes") and hasattr(builder, "_log_download_done"):
        def announce(self) -> None:
            print(f"preparing dataset {self.name} in {self.data_dir} (once)", flush=True)

        builder._log_download_bytes = announce  # noqa: SLF001
        builder._log_download_done = lambda self: None  # noqa: SLF001


def quiet_third_party() -> None:
    """Installs the filters; idempotent."""
    from absl import logging as absl_logging

    targets = [logging.getLogger("absl"), absl_logging.get_absl_handler(),
               *logging.getLogger().handlers]
    for target in targets:
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)
    _quiet_tfds_preparation()
