"""A real GCS for tests: `gcp-storage-emulator` serving the GCS JSON/XML API on 127.0.0.1.

Nothing is mocked below HTTP: gcsfs (behind `etils.epath`), tensorstore (behind orbax's
array writes) and google-cloud-storage (behind tensorboardX's `gs://` event files) speak
to the emulator exactly as they speak to storage.googleapis.com, redirected by the
endpoint variables each honours:

- ``STORAGE_EMULATOR_HOST``: gcsfs and google-cloud-storage (both then send no
  credentials);
- ``TENSORSTORE_GCS_HTTP_URL``: tensorstore's GCS driver, with
  ``GOOGLE_AUTH_TOKEN_FOR_TESTING`` as its bearer token so it does not look for a metadata
  server;
- ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``: gcsfs (2026.10) otherwise first asks the
  gRPC storage-control API whether a bucket is hierarchical, a service the emulator does
  not serve (it logs a warning and falls back to the same JSON API used here).

The emulator runs through `gcs_emulator_server.py`, which adds the generation headers and
preconditions of media downloads that tensorstore relies on (see there).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

BUCKET = "vision-jax-test"
SERVER = Path(__file__).with_name("gcs_emulator_server.py")  # the emulator, GCS-complete


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def endpoint_env(url: str) -> dict[str, str]:
    """The variables that send every GCS client of a process to `url`."""
    return {"STORAGE_EMULATOR_HOST": url, "TENSORSTORE_GCS_HTTP_URL": url,
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "anonymous",
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}


class Emulator:
    """A running emulator: its URL, the env that points clients at it, fresh gs:// folders."""

    def __init__(self, url: str):
        self.url = url
        self.env = endpoint_env(url)

    def new_dir(self, name: str = "run") -> str:
        """A `gs://` folder no other test uses (buckets are shared, prefixes are not)."""
        return f"gs://{BUCKET}/{uuid.uuid4().hex[:10]}/{name}"


def start(storage: Path, port: int) -> subprocess.Popen:
    """Starts the emulator (storing objects under `storage`) and waits until it answers."""
    env = dict(os.environ, STORAGE_BASE=str(storage))
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "start", "--host", "127.0.0.1",
         "--port", str(port), "--default-bucket", BUCKET, "--quiet"],
        cwd=storage, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/storage/v1/b/{BUCKET}",
                                        timeout=2) as reply:
                if reply.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise RuntimeError(f"the GCS emulator did not start on port {port}")
        time.sleep(0.2)


@pytest.fixture(scope="session")
def gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """The emulator for the whole session; this process's env points at it too (restored
    afterwards), so tests read the bucket through `etils.epath` like the code under test."""
    port = _free_port()
    proc = start(tmp_path_factory.mktemp("gcs"), port)
    emulator = Emulator(f"http://127.0.0.1:{port}")
    saved = {k: os.environ.get(k) for k in emulator.env}
    os.environ.update(emulator.env)
    try:
        yield emulator
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        proc.wait(timeout=30)
