"""Prepare a TFDS catalog dataset once, as array_record, for ``config.dataset=tfds:<name>``.

    pip install -e '.[tfds-build]'      # TensorFlow: TFDS needs it to download and encode
    python -m vision_jax.data.prepare oxford_iiit_pet --data_dir ~/tensorflow_datasets

This is what the "not prepared" error of a ``tfds:`` dataset tells users to run. It calls the
catalog builder itself (``tfds.builder(name).download_and_prepare()``) with the one setting
the toolkit needs, ``file_format="array_record"`` (random access for Grain). TFDS' own
``tfds build`` CLI does the same but, in TFDS 4.9, refuses to start without apache-beam,
whose pins clash with ours.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence

DEFAULT_DATA_DIR = "~/tensorflow_datasets"


def missing_module(error: ModuleNotFoundError) -> str:
    """The module an import failed on; TFDS re-raises some import errors without `name`."""
    match = re.search(r"No module named '([^']+)'", str(error))
    return error.name or (match.group(1) if match else "a module that is not installed")


def prepare_command(name: str, data_dir: str | None) -> str:
    """The shell command that prepares ``tfds:<name>`` into ``data_dir``."""
    return (f"pip install -e '.[tfds-build]' && python -m vision_jax.data.prepare {name} "
            f"--data_dir {data_dir or DEFAULT_DATA_DIR}")


def prepare(name: str, data_dir: str | None = None) -> str:
    """Downloads and prepares catalog dataset ``name`` (``name[:version]``, or a builder
    config ``name/config``) as array_record; returns the directory it was written to. A
    ``gs://`` data_dir is prepared in its local mirror and uploaded (array_record writes
    local files only; see `vision_jax.data.remote_dir`)."""
    import tensorflow_datasets as tfds

    data_dir = data_dir or DEFAULT_DATA_DIR
    if "://" in data_dir:
        from vision_jax.data import remote_dir

        local = prepare(name, remote_dir.download(data_dir))
        remote_dir.upload(data_dir)
        relative = os.path.relpath(local, os.fspath(remote_dir.mirror_path(data_dir)))
        return f"{data_dir.rstrip('/')}/{relative}"
    data_dir = os.path.expanduser(data_dir)
    try:
        builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(f"{name!r} is not in the TFDS catalog; check the name at "
                         "https://www.tensorflow.org/datasets/catalog") from None
    builder.download_and_prepare()
    return os.fspath(builder.data_dir)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vision_jax.data.prepare",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="TFDS catalog name, e.g. oxford_iiit_pet or mnist:3.0.1")
    parser.add_argument("--data_dir", default=DEFAULT_DATA_DIR,
                        help="where to write it (then set --config.data_dir to the same)")
    args = parser.parse_args(argv)
    name = args.name.removeprefix("tfds:")
    try:
        path = prepare(name, args.data_dir)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except ModuleNotFoundError as error:
        print(f"error: preparing a TFDS catalog dataset needs {missing_module(error)!r}; "
              "install the extra: pip install -e '.[tfds-build]'", file=sys.stderr)
        sys.exit(2)
    print(f"prepared {name} in {path}; train with --config.dataset=tfds:{name} "
          f"--config.data_dir={args.data_dir}")


if __name__ == "__main__":
    main()
