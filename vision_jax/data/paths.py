"""Where a folder dataset (``folder:``, ``segmentation_folder:``, ``coco:``) lives on disk.

Every folder scheme resolves its path the same way, so it is done once, here: ``~`` expands,
a relative path resolves against ``config.data_dir`` when one is set, and a directory that
is not there is a one-line error naming ``config.dataset`` and what the folder should hold.
"""

from __future__ import annotations

import os


def resolve_dataset_dir(scheme: str, path: str, data_dir: str | None, holds: str) -> str:
    """The absolute directory of ``config.dataset='<scheme>:<path>'``.

    holds: what the folder should contain, for the error (e.g. "images/ and annotations/").
    """
    resolved = os.path.expanduser(path)
    if not os.path.isabs(resolved) and data_dir:
        resolved = os.path.join(os.path.expanduser(data_dir), resolved)
    resolved = os.path.abspath(resolved)
    if not os.path.isdir(resolved):
        hint = " (relative paths resolve against config.data_dir)" if data_dir else ""
        raise FileNotFoundError(
            f"config.dataset='{scheme}:{path}': directory {resolved} does not exist; point "
            f"config.dataset at a folder holding {holds}{hint}")
    return resolved
