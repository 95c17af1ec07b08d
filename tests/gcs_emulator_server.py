"""Runs `gcp-storage-emulator` with the two media-download behaviours of real GCS it lacks.

tensorstore (orbax's array writer) reads an object's generation from the
``x-goog-generation`` header of a media download, and re-reads cached objects with
``ifGenerationNotMatch`` expecting ``304 Not Modified`` when nothing changed; it compares
generations for the conditional writes that keep an OCDBT checkpoint consistent. The
emulator (2026.7.19) sends neither, so a second checkpoint fails with "Malformed
StorageGeneration". This script adds them to the emulator's download handler, as GCS
documents them, and starts the emulator with its own command line:

    python tests/gcs_emulator_server.py start --host 127.0.0.1 --port 9023 ...
"""

from __future__ import annotations

from http import HTTPStatus

from gcp_storage_emulator import server
from gcp_storage_emulator.__main__ import main
from gcp_storage_emulator.exceptions import NotFound
from gcp_storage_emulator.handlers import objects

_download = objects.download


def download(request, response, storage, *args, **kwargs):
    """The emulator's media download, plus generation headers and preconditions."""
    try:
        obj = storage.get_file_obj(request.params["bucket_name"], request.params["object_id"])
    except NotFound:
        response.status = HTTPStatus.NOT_FOUND
        return
    generation = str(obj["generation"])
    match = request.query.get("ifGenerationMatch")
    not_match = request.query.get("ifGenerationNotMatch")
    if match and match[0] != generation:
        response.status = HTTPStatus.PRECONDITION_FAILED
        return
    response["x-goog-generation"] = generation
    response["x-goog-metageneration"] = str(obj.get("metageneration", "1"))
    if not_match and not_match[0] == generation:
        response.status = HTTPStatus.NOT_MODIFIED
        return
    _download(request, response, storage, *args, **kwargs)


def _install() -> None:
    objects.download = download  # `objects.get` dispatches alt=media through this name
    for _, handlers in server.HANDLERS:
        for method, handler in list(handlers.items()):
            if handler is _download:
                handlers[method] = download


if __name__ == "__main__":
    _install()
    main()
