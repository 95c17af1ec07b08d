"""One path type for everything a run reads and writes: `etils.epath.Path`, local or `gs://`.

On a pod slice every host writes its shards of one checkpoint, and a preempted VM's disk is
gone, so a workdir (and a TFDS data_dir) may be a `gs://` bucket. `epath.Path` reaches GCS
through gcsfs (no TensorFlow) and the local disk through `os`, with one API. GCS objects
have no append and no rename, but a whole-object write is atomic there; the two helpers
below pick what each backend does well, so callers never branch on the scheme.
"""

from __future__ import annotations

import logging
import os
import socket
import urllib.parse
import uuid

from etils import epath

from vision_jax.errors import ConfigError

PathLike = str | os.PathLike

# How long the reachability check waits for a TCP connection to the storage endpoint.
CONNECT_TIMEOUT_S = 10.0
_PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY",
                    "all_proxy")


def as_path(path: PathLike) -> epath.Path:
    """`path` as an `epath.Path`: a URL (`gs://...`) as given, a local path absolute (with
    `~` expanded) so it means the same thing after a `chdir` or in a subprocess."""
    text = os.fspath(path)
    if is_remote(text):
        return epath.Path(text)
    return epath.Path(os.path.abspath(os.path.expanduser(text)))


def is_remote(path: PathLike) -> bool:
    """True for an object-store URL (`gs://`, `s3://`, ...), False for a local path."""
    return "://" in os.fspath(path)


def write_text_atomic(path: epath.Path, text: str) -> None:
    """Replaces `path`'s content so that a reader (or a kill -9) never sees half of it: a
    rename over the old file locally; one object upload on GCS (atomic by itself)."""
    if is_remote(path):
        path.write_text(text)
        return
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def append_text(path: epath.Path, text: str) -> None:
    """Appends `text` to `path` (created if absent). GCS has no append: the object is read
    and uploaded again whole, which is what a small log such as metrics.jsonl can afford."""
    if not is_remote(path):
        with path.open("a") as f:
            f.write(text)
        return
    old = path.read_text() if path.exists() else ""
    path.write_text(old + text)


def check_writable(directory: epath.Path, field: str) -> None:
    """Creates `directory` and writes and deletes one small object in it, so storage that is
    unreachable, missing or forbidden is a one-line `ConfigError` naming `field` before
    anything is compiled, not a traceback from deep inside a checkpoint save."""
    unreachable = _unreachable_endpoint(directory)
    if unreachable:
        raise ConfigError(f"{field}={os.fspath(directory)} is not writable "
                          f"({_one_line(unreachable)}); check the network and the storage "
                          "endpoint (STORAGE_EMULATOR_HOST if set)")
    probe = directory / f".write_probe.{uuid.uuid4().hex[:8]}"
    # gcsfs logs each failed retry with a traceback; the one line below says it all.
    gcsfs_logger = logging.getLogger("gcsfs")
    level = gcsfs_logger.level
    gcsfs_logger.setLevel(logging.CRITICAL)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_text("ok")
        probe.unlink()
    except Exception as e:  # noqa: BLE001 - any storage failure gets the same one line
        hint = ("check that the bucket exists and that this machine's credentials "
                "(gcloud auth application-default login, or the VM's service account) may "
                "write it" if is_remote(directory) else "choose a directory you can write")
        raise ConfigError(f"{field}={os.fspath(directory)} is not writable "
                          f"({_one_line(f'{type(e).__name__}: {e}')}); {hint}") from None
    finally:
        gcsfs_logger.setLevel(level)


def _one_line(reason: str) -> str:
    """A storage error's text as one line of at most 300 characters, for a `ConfigError`."""
    return " ".join(reason.split())[:300]


def storage_endpoint(directory: PathLike) -> tuple[str, int] | None:
    """(host, port) of the server that `gs://` requests go to (the one gcsfs uses: GCS, or
    STORAGE_EMULATOR_HOST), or None where it cannot be checked directly: another scheme, a
    local path, or a proxy between this machine and the server."""
    if not os.fspath(directory).startswith("gs://") or any(
            os.environ.get(name) for name in _PROXY_VARIABLES):
        return None
    import fsspec

    # gcsfs's own choice of server (its endpoint_url, STORAGE_EMULATOR_HOST or GCS), so the
    # check never disagrees with the requests that follow; gcsfs has no public name for it.
    location = urllib.parse.urlsplit(fsspec.filesystem("gs")._location)
    if not location.hostname:
        return None
    return location.hostname, location.port or (443 if location.scheme == "https" else 80)


def _unreachable_endpoint(directory: PathLike) -> str | None:
    """Why the storage server cannot be reached, or None. gcsfs retries a refused or failed
    connection with backoff for about half a minute before it gives up; one TCP connect
    says the same in at most `CONNECT_TIMEOUT_S`, and a reachable server costs one round
    trip."""
    endpoint = storage_endpoint(directory)
    if endpoint is None:
        return None
    host, port = endpoint
    try:
        socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as e:
        return f"cannot connect to {host}:{port}: {type(e).__name__}: {e}"
    return None
