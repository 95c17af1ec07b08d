"""Preparing a TFDS catalog dataset from local files, as a user prepares the real one.

The catalog builder's `_split_generators` asks the download manager for its registered URLs. We
put our own archives into the TFDS download cache under the file names of the registered
checksums (a cache hit is not re-hashed), and their extraction beside them (TFDS's extractor
needs TensorFlow, which a user preparing the real dataset has). Everything after that -- the
catalog's `_split_generators` and `_generate_examples`, the features, the array_record writer --
is the installed catalog code, run by the command our "not prepared" error names.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tarfile
from collections.abc import Mapping
from pathlib import Path

import pytest
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core.download import resource as resource_lib

from vision_jax.data.sources import open_splits

REPO = Path(__file__).resolve().parents[1]
_TAR_MODES = {"TAR": "w", "TAR_GZ": "w:gz"}


def _require_importlib_resources() -> None:
    # TFDS 4.9.10 needs importlib_resources to find a catalog builder's checksums file but only
    # declares it for Python < 3.9 (tensorflow/datasets#11212).
    pytest.importorskip("importlib_resources", reason="preparing a TFDS catalog dataset needs "
                        "importlib_resources (tensorflow/datasets#11212)")


def fill_download_cache(name: str, data_dir: Path, archives: Mapping[str, Path]) -> None:
    """Packs each folder of `archives` ({registered archive file name: folder}) as the single
    top-level entry of that archive, into `data_dir`'s TFDS download cache as if downloaded from
    the catalog builder `name`'s URL, with its extraction."""
    _require_importlib_resources()
    downloads = data_dir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    registered = tfds.builder_cls(name).url_infos.items()
    url_infos = {info.filename: (url, info) for url, info in registered}
    unknown = sorted(set(archives) - set(url_infos))
    assert not unknown, f"{name} registers no archive named {unknown}; it has {sorted(url_infos)}"
    for file_name, folder in archives.items():
        url, url_info = url_infos[file_name]
        archive = downloads / resource_lib.get_dl_fname(url, url_info.checksum)
        method = resource_lib.guess_extract_method(file_name).name
        with tarfile.open(archive, _TAR_MODES[method]) as tar:
            tar.add(folder, arcname=folder.name)
        resource_lib.write_info_file(url, epath.Path(archive), name, file_name, url_info)
        with tarfile.open(archive) as tar:
            tar.extractall(downloads / "extracted" / f"{method}.{archive.name}", filter="data")


def prepare_as_told(dataset: str, data_dir: Path, preamble: str = "") -> str:
    """Runs the command that the "not prepared" error of ``tfds:<dataset>`` tells a user to run;
    returns its stdout. `preamble`: Python code run first in that process (see its caller)."""
    _require_importlib_resources()
    with pytest.raises(FileNotFoundError,
                       match=rf"tfds:{re.escape(dataset)}.*not prepared") as error:
        open_splits(f"tfds:{dataset}", {"config.train_split": "train"}, os.fspath(data_dir))
    command = str(error.value).split(" && ", 1)[1].split(", or fix")[0]
    assert command == f"python -m vision_jax.data.prepare {dataset} --data_dir {data_dir}"
    module, *args = shlex.split(command)[2:]
    if preamble:  # `python -c` leaves argv[1:] to the module, as `python -m` does
        code = f"{preamble}\nimport runpy\nrunpy.run_module({module!r}, run_name='__main__', " \
               "alter_sys=True)"
        argv = ["-c", code, *args]
    else:
        argv = ["-m", module, *args]
    result = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"prepared {dataset}" in result.stdout
    return result.stdout
