"""Refuses to continue a workdir's run under a different config, unless asked to.

Running the same command again resumes from the workdir's latest checkpoint. Without this
guard, an override added to that command (a new batch size, learning rate, model) silently
resumed the old run under a new config and overwrote its `config.json`. Here the new
config is compared with the workdir's `config.json` before anything is written:

- changes that leave the trained model's definition alone continue: the length
  (`num_epochs`, `num_steps`), logging, evaluation and checkpoint cadence, the progress
  bar, and where the run executes (`mesh`, `sharding`, `num_data_workers`, `host_cache_gib`:
  a checkpoint
  reshards onto any mesh);
- anything else is one `ConfigError` line listing the changed fields, unless
  ``--config.allow_config_change=True``; a change allowed that way is appended to the
  workdir's `config_changes.jsonl`, so the run's history stays readable.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from typing import Any

import ml_collections
from etils import epath

from vision_jax.errors import ConfigError

CONFIG_FILE = "config.json"
CHANGES_FILE = "config_changes.jsonl"
ALLOW_FIELD = "allow_config_change"
# Fields (and groups, by prefix) that may change between the runs of one workdir.
CONTINUING = ("num_epochs", "num_steps", "log_every_steps", "eval_every_steps",
              "checkpoint_every_steps", "keep_checkpoints", "progress_bar", "eval_batch_size",
              "num_data_workers", "host_cache_gib", "mesh.", "sharding.", ALLOW_FIELD)
_SHOWN = 4  # changed fields spelled out in the error; the rest are counted


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """{"optimizer.learning_rate": 0.001, ...}: one entry per leaf field."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _as_json(config: ml_collections.ConfigDict) -> dict[str, Any]:
    # The same conversion `config.json` went through, so tuples and lists compare equal.
    return json.loads(config.to_json_best_effort(sort_keys=True))


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any],
                   defaults: Mapping[str, Any] | None = None) -> dict[str, tuple[Any, Any]]:
    """{field: (old value, new value)} for every leaf that differs. A field the old config
    lacks (written before the field existed) counts as holding its default."""
    old_flat, new_flat = flatten(old), flatten(new)
    defaults_flat = flatten(defaults or {})
    missing = object()
    changes = {}
    for key in sorted(set(old_flat) | set(new_flat)):
        before = old_flat.get(key, defaults_flat.get(key, missing))
        after = new_flat.get(key, missing)
        if before != after:
            changes[key] = (None if before is missing else before,
                            None if after is missing else after)
    return changes


def _continues(field: str) -> bool:
    return any(field == c or (c.endswith(".") and field.startswith(c)) for c in CONTINUING)


def check_workdir(config: ml_collections.ConfigDict, workdir: str, *, resuming: bool,
                  record: bool = True) -> None:
    """Raises `ConfigError` when `config` would continue `workdir`'s run with changed
    fields that define the model or its training; records an allowed change."""
    path = epath.Path(workdir) / CONFIG_FILE  # local or gs://, like every workdir path
    if not resuming or not path.exists():
        return  # nothing trained yet: the new config simply starts the run
    try:
        old = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path} cannot be read ({e}); use a new --workdir") from None
    from vision_jax.training.defaults import default_config  # the fields added since

    changes = changed_fields(old, _as_json(config), _as_json(default_config()))
    blocking = {k: v for k, v in changes.items() if not _continues(k)}
    if not blocking:
        return
    if not config.get(ALLOW_FIELD, False):
        shown = [f"{k} {v[0]!r} -> {v[1]!r}" for k, v in list(blocking.items())[:_SHOWN]]
        more = len(blocking) - len(shown)
        raise ConfigError(
            f"--workdir {workdir} holds a run with a different config ({'; '.join(shown)}"
            f"{f'; and {more} more' if more > 0 else ''}); use a new --workdir, or pass "
            f"--config.{ALLOW_FIELD}=True to continue this run with the new config")
    if record:
        entry = {"time": datetime.datetime.now(datetime.UTC).isoformat(
            timespec="seconds"), "changes": {k: list(v) for k, v in blocking.items()}}
        log = epath.Path(workdir) / CHANGES_FILE
        history = log.read_text() if log.exists() else ""  # gs:// objects cannot append
        log.write_text(history + json.dumps(entry) + "\n")
