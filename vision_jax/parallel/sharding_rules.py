"""Where each array of the train state lives on the mesh (the `jit` strategy).

The rule is FSDP (ZeRO-3 style): a parameter with at least
`config.sharding.fsdp_min_size` elements is split along its largest dimension
that the `fsdp` axis size divides; smaller ones stay replicated, since their
all-gather would cost a collective's latency to save little memory.
`config.sharding.rules` overrides this per parameter: `(regex, spec)` pairs
matched with `re.search` against the '/'-joined path inside the variables
collection (e.g. `stage4_block1/conv1/kernel`), the first match winning; a spec
names, per dimension, a mesh axis, a tuple of axes, or None.

Optimizer state mirrors the parameters (Adam's `mu` and `nu`, momentum traces):
a leaf whose path ends with a parameter's path and has its shape gets that
parameter's sharding, so an update never moves data between devices. Every
other leaf (step counters, schedule state) follows the default rule, which
replicates scalars.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import jax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from vision_jax.parallel.mesh import MESH_AXES

FSDP_AXIS = "fsdp"
Rule = tuple[re.Pattern, tuple]


def key_name(key: Any) -> str:
    """One element of a pytree key path as text (dict key, attribute or index)."""
    return jax.tree_util.keystr((key,), simple=True)


def path_string(path: Sequence[Any]) -> str:
    return jax.tree_util.keystr(tuple(path), simple=True, separator="/")


def _entry_axes(entry) -> tuple[str, ...]:
    """The mesh axes one spec entry (None, an axis name, or a tuple of them) splits over."""
    return () if entry is None else (entry,) if isinstance(entry, str) else tuple(entry)


def compile_rules(rules: Sequence) -> list[Rule]:
    """Checks `config.sharding.rules` and compiles the regexes (lists from JSON accepted)."""
    compiled = []
    for index, rule in enumerate(rules or ()):
        where = f"config.sharding.rules[{index}]={rule!r}"
        if not isinstance(rule, Sequence) or isinstance(rule, str) or len(rule) != 2:
            raise ValueError(f"{where} must be a pair (regex, spec), e.g. "
                             "('classifier/kernel', (None, 'fsdp'))")
        pattern, spec = rule
        if not isinstance(pattern, str):
            raise ValueError(f"{where}: the regex must be a string")
        try:
            regex = re.compile(pattern)
        except re.error as e:
            raise ValueError(f"{where}: {pattern!r} is not a valid regex ({e})") from None
        if isinstance(spec, str) or not isinstance(spec, Sequence):
            raise ValueError(f"{where}: the spec must be a tuple with one entry per dimension "
                             "(an axis name, a tuple of axis names, or None)")
        entries = []
        for entry in spec:
            axes = _entry_axes(entry)
            unknown = [a for a in axes if a not in MESH_AXES]
            if unknown:
                raise ValueError(f"{where}: unknown mesh axis {unknown[0]!r}; use one of "
                                 f"{list(MESH_AXES)} or None")
            entries.append(entry if entry is None or isinstance(entry, str) else axes)
        used = [a for e in entries for a in _entry_axes(e)]
        if len(used) != len(set(used)):
            raise ValueError(f"{where}: a mesh axis may shard only one dimension")
        compiled.append((regex, tuple(entries)))
    return compiled


def _axes_size(entry, axis_sizes: Mapping[str, int]) -> int:
    return math.prod(axis_sizes[axis] for axis in _entry_axes(entry))


def _rule_spec(path: str, shape: tuple, spec: tuple, index: int,
               axis_sizes: Mapping[str, int]) -> P:
    if len(spec) > len(shape):
        raise ValueError(
            f"config.sharding.rules[{index}] gives {len(spec)} dimensions but {path!r} has "
            f"shape {shape}; shorten the spec or narrow the regex")
    for dim, entry in enumerate(spec):
        parts = _axes_size(entry, axis_sizes)
        if shape[dim] % parts:
            raise ValueError(
                f"config.sharding.rules[{index}] splits dimension {dim} (size {shape[dim]}) of "
                f"{path!r} over {entry!r} ({parts} devices), which does not divide it; pick "
                "another dimension or axis")
    spec = list(spec)
    while spec and spec[-1] is None:  # P(None, None) and P() mean the same: compare equal
        spec.pop()
    return P(*spec)


def fsdp_spec(shape: tuple, fsdp_size: int, min_size: int) -> P:
    """The default rule: the largest dimension `fsdp_size` divides, or replicated."""
    if fsdp_size <= 1 or math.prod(shape) < min_size:
        return P()
    divisible = [d for d in range(len(shape)) if shape[d] % fsdp_size == 0]
    if not divisible:
        return P()
    # Largest first; among equals the last (a kernel's output channels, HWIO).
    dim = max(divisible, key=lambda d: (shape[d], d))
    return P(*[FSDP_AXIS if d == dim else None for d in range(len(shape))])


def _leaf_spec(path: str, shape: tuple, rules: list[Rule], axis_sizes: Mapping[str, int],
               min_size: int) -> P:
    for index, (regex, spec) in enumerate(rules):
        if regex.search(path):
            return _rule_spec(path, shape, spec, index, axis_sizes)
    return fsdp_spec(shape, axis_sizes.get(FSDP_AXIS, 1), min_size)


def _collection_specs(tree: Any, rules, axis_sizes, min_size) -> Any:
    return jax.tree_util.tree_map_with_path(
        lambda path, leaf: _leaf_spec(path_string(path), tuple(leaf.shape), rules, axis_sizes,
                                      min_size), tree)


def _mirror_specs(opt_state: Any, param_specs: dict[tuple, tuple[tuple, P]], rules, axis_sizes,
                  min_size) -> Any:
    """Optimizer-state leaves take the spec of the parameter whose path ends theirs."""
    longest = max((len(k) for k in param_specs), default=0)

    def spec(path, leaf):
        names = tuple(key_name(k) for k in path)
        for length in range(min(longest, len(names)), 0, -1):
            match = param_specs.get(names[-length:])
            if match is not None and match[0] == tuple(leaf.shape):
                return match[1]
        return _leaf_spec(path_string(path), tuple(leaf.shape), rules, axis_sizes, min_size)

    return jax.tree_util.tree_map_with_path(spec, opt_state)


def state_partition_specs(state: Any, axis_sizes: Mapping[str, int], min_size: int,
                          rules: Sequence = ()) -> Any:
    """PartitionSpecs for a `TrainState` of shapes (`jax.eval_shape`), by the rules above.

    Raises ValueError when the `fsdp` axis is larger than one but shards no parameter.
    """
    compiled = compile_rules(rules)
    params = _collection_specs(state.params, compiled, axis_sizes, min_size)
    flat = jax.tree_util.tree_flatten_with_path(state.params)[0]
    by_path = {tuple(key_name(k) for k in path): (tuple(leaf.shape), spec)
               for (path, leaf), spec in zip(flat, jax.tree.leaves(params), strict=True)}
    fsdp_size = axis_sizes.get(FSDP_AXIS, 1)
    if fsdp_size > 1 and not any(FSDP_AXIS in _spec_axes(s) for _, s in by_path.values()):
        raise ValueError(
            f"config.mesh.fsdp={fsdp_size} shards no parameter: none with at least "
            f"config.sharding.fsdp_min_size={min_size} elements has a dimension divisible by "
            f"{fsdp_size}; lower config.sharding.fsdp_min_size, pick an fsdp size that divides "
            "the model's channel counts, or set config.mesh.fsdp=1")
    return state.replace(
        step=P(),
        params=params,
        batch_stats=_collection_specs(state.batch_stats, compiled, axis_sizes, min_size),
        opt_state=_mirror_specs(state.opt_state, by_path, compiled, axis_sizes, min_size),
    )


def _spec_axes(spec: P) -> set[str]:
    return {axis for entry in spec for axis in _entry_axes(entry)}


def state_shardings(state: Any, mesh: Mesh, min_size: int, rules: Sequence = ()) -> Any:
    """`state_partition_specs` as NamedShardings on `mesh`."""
    specs = state_partition_specs(state, dict(mesh.shape), min_size, rules)
    return jax.tree.map(lambda spec: NamedSharding(mesh, spec), specs,
                        is_leaf=lambda x: isinstance(x, P))
