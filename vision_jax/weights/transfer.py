"""Transfer-learning helpers: start a new model from imported weights, and freeze a part of it.

`merge_variables` lays imported variables over a freshly initialised model's: tensors whose
path matches ``skip`` keep their initial values, and tensors whose shape no longer fits (the
head of a model built with a new ``num_classes``) are re-initialised, i.e. also keep theirs.
It returns what happened to every tensor so the caller can log it.

`freeze_labels` / `freeze_mask` / `frozen` express a ``freeze`` regex over parameter paths as
optax partitioning: the frozen parameters get zero updates (``optax.set_to_zero``), so they stay
bit-for-bit unchanged whatever the optimiser (weight decay and momentum included).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import jax
import optax
from flax import traverse_util

FROZEN, TRAINABLE = "frozen", "trainable"


@dataclasses.dataclass(frozen=True)
class MergeReport:
    """Paths (``params/stage1_block1/conv1/kernel``) by what `merge_variables` did to them."""

    loaded: tuple[str, ...]
    skipped: tuple[str, ...]  # matched ``skip``: initial values kept
    reinitialised: tuple[str, ...]  # shape differs from the source's: initial values kept
    not_in_source: tuple[str, ...]  # the source has no such tensor: initial values kept
    unused: tuple[str, ...]  # source tensors the model has no place for

    def summary(self) -> str:
        """One line for the log, naming the tensors that were not loaded."""
        parts = [f"loaded {len(self.loaded)} tensors"]
        for label, paths in (("skipped", self.skipped), ("re-initialised", self.reinitialised),
                             ("not in the source", self.not_in_source),
                             ("unused from the source", self.unused)):
            if paths:
                parts.append(f"{label}: {', '.join(paths)}")
        return "; ".join(parts)


def merge_variables(initial: Mapping[str, Any], imported: Mapping[str, Any],
                    skip: str | None = None) -> tuple[dict[str, Any], MergeReport]:
    """``initial`` with every tensor of ``imported`` of the same path and shape, except those
    whose '/'-joined path (``params/classifier/kernel``) ``re.search``-matches ``skip``."""
    pattern = re.compile(skip) if skip else None
    ours = traverse_util.flatten_dict(dict(initial), sep="/")
    theirs = traverse_util.flatten_dict(dict(imported), sep="/")
    merged, report = {}, {key: [] for key in ("loaded", "skipped", "reinitialised",
                                              "not_in_source")}
    for path, value in ours.items():
        if pattern is not None and pattern.search(path):
            outcome = "skipped"
        elif path not in theirs:
            outcome = "not_in_source"
        elif tuple(theirs[path].shape) != tuple(value.shape):
            outcome = "reinitialised"
        else:
            outcome = "loaded"
        report[outcome].append(path)
        merged[path] = (jax.numpy.asarray(theirs[path], value.dtype) if outcome == "loaded"
                        else value)
    unused = tuple(path for path in theirs if path not in ours)
    return (traverse_util.unflatten_dict(merged, sep="/"),
            MergeReport(**{k: tuple(v) for k, v in report.items()}, unused=unused))


def freeze_labels(params: Any, freeze: str) -> Any:
    """A pytree like ``params`` of ``"frozen"`` / ``"trainable"``: frozen where the
    '/'-joined parameter path (``stage1_block1/conv1/kernel``) ``re.search``-matches."""
    pattern = re.compile(freeze)

    def label(path: tuple, _: Any) -> str:
        return FROZEN if pattern.search(path_string(path)) else TRAINABLE

    return jax.tree_util.tree_map_with_path(label, params)


def freeze_mask(params: Any, freeze: str) -> Any:
    """A pytree like ``params`` of bools, True where frozen (for ``optax.masked``)."""
    return jax.tree.map(lambda label: label == FROZEN, freeze_labels(params, freeze))


def frozen(tx: optax.GradientTransformation, freeze: str) -> optax.GradientTransformation:
    """``tx`` for the trainable parameters, zero updates for those matching ``freeze``."""
    return optax.multi_transform({TRAINABLE: tx, FROZEN: optax.set_to_zero()},
                                 lambda params: freeze_labels(params, freeze))


def path_string(path: tuple) -> str:
    """A tree path (of `jax.tree_util` keys) as `stage1_block1/conv1/kernel`."""
    return "/".join(str(getattr(key, "key", getattr(key, "name", key))) for key in path)
