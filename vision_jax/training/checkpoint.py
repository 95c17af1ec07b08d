"""Orbax checkpoints of the train state and the data iterator's position.

Saving is asynchronous and keeps the latest N steps. Restoring checks the
saved tree against the one the current config builds *before* reading any
array, so an incompatible checkpoint is a clear error, and nothing is ever
deleted because a restore failed.
"""

from __future__ import annotations

from typing import Any

import jax
import orbax.checkpoint as ocp
from flax import serialization, traverse_util

from vision_jax import paths
from vision_jax.training.state import TrainState


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored into the current run."""


def _flat_shapes(tree: dict) -> dict[str, tuple]:
    flat = traverse_util.flatten_dict(tree, sep="/") if tree else {}
    return {k: (tuple(v.shape), str(v.dtype)) for k, v in flat.items()
            if hasattr(v, "shape")}


def describe_mismatch(saved: dict[str, tuple], expected: dict[str, tuple], limit: int = 3) -> str:
    """A short human-readable difference between two {path: (shape, dtype)} maps."""
    problems = []
    for key in sorted(expected.keys() - saved.keys())[:limit]:
        problems.append(f"missing {key}")
    for key in sorted(saved.keys() - expected.keys())[:limit]:
        problems.append(f"unexpected {key}")
    for key in sorted(saved.keys() & expected.keys()):
        if saved[key][0] != expected[key][0]:
            problems.append(f"{key}: saved shape {saved[key][0]} vs expected {expected[key][0]}")
        if len(problems) >= 3 * limit:
            break
    return "; ".join(problems)


class Checkpointer:
    """Saves and restores `(TrainState, data-iterator state)` pairs under `directory`, local
    or `gs://` (orbax writes arrays through tensorstore's GCS driver and, on GCS, marks a
    finished step with `commit_success.txt` instead of renaming a temporary folder)."""

    def __init__(self, directory: paths.PathLike, keep: int = 3, async_save: bool = True):
        self.directory = paths.as_path(directory)
        self.manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(
                preservation_policy=ocp.checkpoint_managers.LatestN(keep),
                enable_async_checkpointing=async_save,
            ),
            # Registered up front so that metadata can be read before any save/restore.
            item_handlers={"state": ocp.StandardCheckpointHandler(),
                           "data": ocp.JsonCheckpointHandler()},
        )

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, state: TrainState, data_state: Any, *, force: bool = False) -> None:
        step = int(jax.device_get(state.step))
        if step in self.manager.all_steps():
            return
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(serialization.to_state_dict(state)),
                data=ocp.args.JsonSave(data_state if data_state is not None else {}),
            ),
            force=force,
        )

    def restore(
        self, abstract_state: TrainState, step: int | None = None
    ) -> tuple[TrainState, Any]:
        """Restores `step` (default: latest) onto the shardings of `abstract_state`."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint in {self.directory}")
        target = serialization.to_state_dict(abstract_state)
        try:
            saved_tree = self.manager.item_metadata(step)["state"].tree
        except Exception as e:  # noqa: BLE001 - any read failure means a damaged checkpoint
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} is unreadable ({type(e).__name__}: "
                f"{e}); move that step's folder aside to resume from an older one") from e
        mismatch = describe_mismatch(_flat_shapes(saved_tree), _flat_shapes(target))
        if mismatch:
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} does not fit the configured model: "
                f"{mismatch}. Use the config it was written with, or a new --workdir")
        try:
            restored = self.manager.restore(
                step,
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(target),
                    data=ocp.args.JsonRestore(),
                ),
            )
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(
                f"checkpoint step {step} in {self.directory} could not be restored "
                f"({type(e).__name__}: {e}); move that step's folder aside to resume from an "
                "older one") from e
        state = serialization.from_state_dict(abstract_state, restored["state"])
        return state, restored["data"]

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()
