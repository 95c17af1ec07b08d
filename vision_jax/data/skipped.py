"""Files that fail to decode mid-run: skipped with a warning, counted, listed at the end.

The pre-run scan (`vision_jax.data.scan`) decodes every file of a file dataset, or an evenly
spaced sample of a large one, so a run normally meets no bad file. One that still fails mid-run
(outside the sample, or damaged after the scan) must not take a run of hours down.

`SkippingSource` wraps a source: a record whose file cannot be read (an `UnreadableFile`) is
replaced by the next readable record in source order. Batch shapes do not change, and the
replacement depends only on the files, never on timing or the process count, so the
exact-resume guarantee holds (the iterator's state is positions, not contents). The
replacement is tagged (`SKIPPED_KEY`), so an eval row counts it with mask 0: the bad file is
left out of the metrics rather than scored twice under another name.

Each file is warned about once and kept in this process's list; the loop reports the list at
the end of the run and writes it to ``skipped_files.txt`` in the workdir. (Decoding in Grain
worker processes, ``config.num_data_workers > 0``, warns in the worker; its list stays there.)
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

from absl import logging
from etils import epath

SKIPPED_KEY = "skipped_file"  # set on a replacement record
SKIPPED_FILE = "skipped_files.txt"  # in the workdir
# A record is replaced by one of the next few; more unreadable records in a row than this
# means a systematic problem (a wrong mask mapping of a TFDS dataset, a broken disk), which
# must stop the run rather than be skipped past.
MAX_CONSECUTIVE = 16

_lock = threading.Lock()
_skipped: dict[str, str] = {}  # path -> the first error's message


class UnreadableFile(ValueError):
    """A dataset file that cannot be decoded (the message names it and the fix)."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(message)
        self.path = path or message  # re-raised with a prefix, the message still names it


def record_skip(error: UnreadableFile) -> None:
    """Counts the file of `error`, warning once per file."""
    with _lock:
        if error.path in _skipped:
            return
        _skipped[error.path] = str(error)
    logging.warning("skipping a bad file mid-run (its place is taken by the next readable "
                    "record): %s", error)


def skipped_files() -> dict[str, str]:
    """{path: error message} of the files this process skipped so far."""
    with _lock:
        return dict(_skipped)


def clear() -> None:
    """Forgets the skipped files (a new run in the same process)."""
    with _lock:
        _skipped.clear()


class SkippingSource:
    """`source` read through `select` (the task's record -> example): each item is the
    selected example, so the task's select runs once per read; a record that raises
    `UnreadableFile` is replaced by the next readable one, tagged with `SKIPPED_KEY`."""

    def __init__(self, source: Any, select: Callable[[dict[str, Any]], Any]):
        self._source = source
        self._select = select

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict[str, Any]:
        size = len(self._source)
        first_error = None
        for offset in range(min(MAX_CONSECUTIVE, size)):
            try:
                example = self._select(self._source[(index + offset) % size])
            except UnreadableFile as error:
                record_skip(error)
                first_error = first_error or error
                continue
            if offset:
                example = {**example, SKIPPED_KEY: True}
            return example
        raise first_error

    def __getitems__(self, indices: list[int]) -> list[dict[str, Any]]:
        # Grain reads several records in one call where the source can (TFDS does).
        read_many = getattr(self._source, "__getitems__", None)
        if read_many is not None:
            try:
                return [self._select(record) for record in read_many(indices)]
            except UnreadableFile:
                pass  # one by one, replacing the bad ones
        return [self[i] for i in indices]

    def __repr__(self) -> str:
        return f"SkippingSource({self._source!r})"


def report(workdir: epath.PathLike, process_index: int = 0) -> list[str]:
    """Warns "skipped N bad files: ..." and writes the list (merged with a previous run's in
    the same workdir, which a resumed run extends) to ``skipped_files.txt`` (process 0) or
    ``skipped_files.process<i>.txt``; returns the paths this process skipped, and forgets
    them (the next run in this process starts a new list)."""
    with _lock:
        files = dict(_skipped)
        _skipped.clear()
    if not files:
        return []
    names = sorted(files)
    print(f"skipped {len(names)} bad file(s) mid-run (the pre-run scan did not see them "
          f"fail): {', '.join(names)}; fix or delete them", file=sys.stderr, flush=True)
    name = SKIPPED_FILE if process_index == 0 else f"skipped_files.process{process_index}.txt"
    path = epath.Path(workdir) / name
    try:
        earlier = dict(line.split("\t", 1) for line in path.read_text().splitlines()
                       if "\t" in line) if path.exists() else {}
        merged = {**earlier, **files}
        path.write_text("".join(f"{p}\t{merged[p]}\n" for p in sorted(merged)))
    except OSError as error:  # the list was printed; a report must not fail the run
        logging.warning("could not write %s: %s", path, error)
    return names
