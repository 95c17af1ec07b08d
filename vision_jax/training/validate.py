"""Config checks that run before anything is compiled.

Every failure is a `ConfigError` whose one-line message names the config
field and how to fix it.
"""

from __future__ import annotations

import difflib

import jax
import jax.numpy as jnp
import ml_collections

from vision_jax import models, tasks
from vision_jax.parallel import mesh as mesh_lib
from vision_jax.parallel import sharding_rules
from vision_jax.training import optimizer as optimizer_lib
from vision_jax.training.defaults import default_config

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
# Sub-configs whose keys are free (model-specific keyword arguments).
FREE_FORM = {"model", "segmentation", "detection"}


class ConfigError(ValueError):
    """A config that cannot run; the message names the field and the fix."""


def _check_known_fields(config, reference, prefix="config") -> None:
    for key in config.keys():
        path = f"{prefix}.{key}"
        if key not in reference:
            close = difflib.get_close_matches(key, list(reference.keys()), n=1)
            hint = f"; did you mean {prefix}.{close[0]}?" if close else ""
            raise ConfigError(f"{path} is not a known field{hint}")
        value, ref = config[key], reference[key]
        if key in FREE_FORM and prefix == "config":
            continue
        if isinstance(ref, ml_collections.ConfigDict):
            if not isinstance(value, ml_collections.ConfigDict):
                raise ConfigError(f"{path} must be a group of fields, got {value!r}")
            _check_known_fields(value, ref, path)
        elif ref is not None and value is not None:
            ok = isinstance(value, type(ref)) or (isinstance(ref, float) and isinstance(value, int))
            ok = ok or (isinstance(ref, tuple) and isinstance(value, list))
            if not ok or (isinstance(ref, int | float) and isinstance(value, bool)
                          and not isinstance(ref, bool)):
                raise ConfigError(
                    f"{path}={value!r} has type {type(value).__name__}; "
                    f"it must be {type(ref).__name__} like the default {ref!r}")


def compute_dtype(config) -> jnp.dtype:
    if config.dtype not in DTYPES:
        raise ConfigError(f"config.dtype={config.dtype!r} is unknown; use one of {list(DTYPES)}")
    return DTYPES[config.dtype]


def validate_config(config: ml_collections.ConfigDict, *, device_count: int | None = None,
                    process_count: int | None = None) -> None:
    """Field names, types, names of registered things, and batch/mesh arithmetic."""
    _check_known_fields(config, default_config())
    if config.model_name not in models.names():
        raise ConfigError(f"config.model_name={config.model_name!r} is unknown; use one of "
                          f"{', '.join(models.names())}")
    if config.task not in tasks.names():
        raise ConfigError(f"config.task={config.task!r} is unknown; use one of {tasks.names()}")
    try:
        tasks.validate(config)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if config.optimizer.name not in optimizer_lib.OPTIMIZERS:
        raise ConfigError(f"config.optimizer.name={config.optimizer.name!r} is unknown; use one "
                          f"of {list(optimizer_lib.OPTIMIZERS)}")
    if config.schedule.name not in optimizer_lib.SCHEDULES:
        raise ConfigError(f"config.schedule.name={config.schedule.name!r} is unknown; use one "
                          f"of {list(optimizer_lib.SCHEDULES)}")
    if config.optimizer.weight_decay_on not in ("kernels", "all"):
        raise ConfigError("config.optimizer.weight_decay_on must be 'kernels' or 'all'")
    compute_dtype(config)
    for field in ("batch_size", "eval_batch_size", "num_classes", "image_size",
                  "log_every_steps", "keep_checkpoints"):
        if config[field] <= 0:
            raise ConfigError(f"config.{field}={config[field]} must be positive")
    if config.num_steps <= 0 and config.num_epochs <= 0:
        raise ConfigError("set config.num_epochs or config.num_steps to a positive value")
    if config.optimizer.grad_accum_steps < 1:
        raise ConfigError("config.optimizer.grad_accum_steps must be >= 1")

    device_count = jax.device_count() if device_count is None else device_count
    process_count = jax.process_count() if process_count is None else process_count
    try:
        dp = mesh_lib.data_parallel_size(config.mesh, device_count)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    _validate_sharding(config, device_count)
    for field in ("batch_size", "eval_batch_size"):
        multiple = max(dp, process_count)
        if config[field] % multiple:
            lower = config[field] // multiple * multiple or multiple
            raise ConfigError(
                f"config.{field}={config[field]} does not divide over the {dp}-way data-parallel "
                f"mesh ({device_count} devices, {process_count} processes); use a multiple of "
                f"{multiple}, e.g. --config.{field}={lower}")


STRATEGIES = ("jit", "shard_map")


def _validate_sharding(config: ml_collections.ConfigDict, device_count: int) -> None:
    """`config.sharding` on its own and against the mesh (the shapes come later: an fsdp
    size that divides no parameter is caught when the state's shardings are built)."""
    sharding = config.sharding
    if sharding.strategy not in STRATEGIES:
        raise ConfigError(f"config.sharding.strategy={sharding.strategy!r} is unknown; use one "
                          f"of {list(STRATEGIES)}")
    if sharding.fsdp_min_size < 0:
        raise ConfigError(f"config.sharding.fsdp_min_size={sharding.fsdp_min_size} must be >= 0 "
                          "(a number of elements)")
    try:
        sharding_rules.compile_rules(sharding.rules)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if sharding.strategy == "shard_map":
        fsdp = mesh_lib.mesh_shape(config.mesh, device_count)["fsdp"]
        if fsdp != 1:
            raise ConfigError(
                f"config.sharding.strategy='shard_map' keeps parameters replicated, so it needs "
                f"config.mesh.fsdp=1 (got {fsdp}); use --config.sharding.strategy=jit for FSDP")
        if sharding.rules:
            raise ConfigError(
                "config.sharding.rules apply to the 'jit' strategy only; 'shard_map' keeps "
                "parameters replicated: remove the rules or use --config.sharding.strategy=jit")


def validate_against_data(config: ml_collections.ConfigDict, info) -> None:
    """Image size against the model, via shape inference only (the task checks the
    dataset's labels when it is created)."""
    shape = (1, config.image_size, config.image_size, image_channels(config, info))
    model = build_model(config)
    try:
        jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros(shape), train=False))
    except Exception as e:  # noqa: BLE001 - shape errors come in many exception types
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if " impl=" in first_line:  # a kernel choice the model's layers cannot run
            raise ConfigError(
                f"config.model.conv_impl={config.model.get('conv_impl')!r} / pool_impl="
                f"{config.model.get('pool_impl')!r} cannot run model {config.model_name!r} "
                f"({first_line}); use 'auto' (each layer picks a kernel it supports)") from None
        raise ConfigError(
            f"config.image_size={config.image_size} does not fit model "
            f"{config.model_name!r} ({first_line}); choose an image size the model's "
            "down-sampling accepts") from None


def build_model(config: ml_collections.ConfigDict):
    """The configured model; a bad keyword in `config.model` becomes a ConfigError."""
    try:
        return models.create(config.model_name, num_classes=config.num_classes,
                             dtype=compute_dtype(config), **config.model)
    except TypeError as e:
        raise ConfigError(f"config.model has a field model {config.model_name!r} does not take "
                          f"({e}); remove it or check the model's arguments") from None


def image_channels(config: ml_collections.ConfigDict, info) -> int:
    """Channels the model sees: `config.image_channels`, or the dataset's own."""
    if config.image_channels:
        return int(config.image_channels)
    return int(info.num_channels or (info.image_shape[-1] if info.image_shape else 3))
