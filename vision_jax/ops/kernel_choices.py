"""Which implementation ``impl="auto"`` ran for each layer, recorded into a run's workdir.

``auto`` decides in Python while a program is traced, from static shapes and the shipped
table, and winograd or FFT are not bit-identical to ``lax``, so ``config.json``'s "auto"
does not say what ran. ``record_kernel_choices(path)`` makes every later ``auto`` decision
land in ``path`` (``kernels.json``): one entry per (layer, op, signature) with the chosen
``impl`` and its ``source`` (``"table"``: the measured table; ``"default"``: the built-in
rule). The file is rewritten after each traced program that made new choices (JAX reports
the end of every trace), so initialisation, the train step and the eval step each add
theirs, and a run killed later still leaves it; ``stop_recording()`` ends the recording.
"""

from __future__ import annotations

import json
import os
from typing import Any

import jax
from etils import epath

from vision_jax import paths

_TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"
_recorder: _Recorder | None = None
_listening = False


class _Recorder:
    def __init__(self, path: epath.Path, write: bool):
        self.path = path
        self.write_file = write
        self.entries: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.pending = False

    def note(self, entry: dict[str, Any]) -> None:
        key = (entry["layer"], entry["op"], entry["signature"])
        if self.entries.get(key) != entry:
            self.entries[key] = entry
            self.pending = True

    def flush(self) -> None:
        if not (self.pending and self.write_file):
            return
        self.pending = False
        document = {"backend": jax.default_backend(), "choices": sorted(
            self.entries.values(), key=lambda e: (e["layer"], e["op"], e["signature"]))}
        paths.write_text_atomic(self.path, json.dumps(document, indent=1) + "\n")


def record_kernel_choices(path: str | os.PathLike, *, write: bool = True) -> None:
    """From now on, records every ``auto`` choice of this process into ``path`` (replacing an
    earlier recording). ``write=False`` (every process but the main one) collects only."""
    global _recorder, _listening
    _recorder = _Recorder(paths.as_path(path), write)
    if not _listening:
        jax.monitoring.register_event_duration_secs_listener(_on_event)
        _listening = True


def stop_recording() -> None:
    """Writes what is pending and records nothing more (the end of a run: a later run in the
    same process must not add its choices to this one's file)."""
    global _recorder
    flush()
    _recorder = None


def recorded() -> list[dict[str, Any]]:
    """The choices recorded so far (in trace order), [] when nothing records."""
    return [] if _recorder is None else list(_recorder.entries.values())


def flush() -> None:
    """Writes pending choices now (done by itself at the end of every trace)."""
    if _recorder is not None:
        _recorder.flush()


def note_choice(op: str, signature: str, impl: str, source: str) -> None:
    """Called by the dispatchers at trace time for every ``impl="auto"`` decision."""
    if _recorder is not None:
        _recorder.note({"layer": _layer_name(), "op": op, "signature": signature,
                        "impl": impl, "source": source})


def _on_event(event: str, duration: float, **kwargs) -> None:
    del duration, kwargs
    if event == _TRACE_EVENT:
        flush()


def _layer_name() -> str:
    # Flax modules open a JAX name scope per module call, so the name stack is the layer's
    # path ("SeedCNN/conv1"). JAX has no public accessor for it; without one, no name.
    try:
        from jax._src import source_info_util

        return str(source_info_util.current_name_stack())
    except (ImportError, AttributeError):
        return ""
