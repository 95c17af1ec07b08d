"""Config checks that run before anything is compiled.

`validate_config` parses the config into its typed sections
(`vision_jax.training.run_config.parse_config`, which checks each field beside its
declaration) and adds what needs the devices: the mesh, the sharding strategy and the
batch arithmetic. `check_model_fits` traces the model's init once against the data's image
shape (after `vision_jax.data.validate_data_config` has read the dataset's channels). Every
failure is a `ConfigError` whose one-line message names the field and the fix.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging

from vision_jax import models
from vision_jax.errors import ConfigError
from vision_jax.parallel import mesh as mesh_lib
from vision_jax.parallel import sharding_rules
from vision_jax.training.run_config import RunConfig, parse_config
from vision_jax.training.state import TracedInit, trace_init

__all__ = ["ConfigError", "build_model", "check_model_fits", "compute_dtype", "image_channels",
           "validate_config"]

DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16, "float16": jnp.float16}
# Model options that pick a kernel; "auto" always picks one the layer supports.
KERNEL_OPTIONS = ("conv_impl", "pool_impl")


def compute_dtype(dtype: str) -> jnp.dtype:
    return DTYPES[dtype]


def validate_config(config: ml_collections.ConfigDict, *, device_count: int | None = None,
                    process_count: int | None = None) -> RunConfig:
    """The run's sections, checked on their own and against the devices."""
    run = parse_config(config)
    device_count = jax.device_count() if device_count is None else device_count
    process_count = jax.process_count() if process_count is None else process_count
    try:
        dp = mesh_lib.data_parallel_size(run.mesh, device_count)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    _validate_sharding(run, device_count)
    run = _round_up_eval_batch(config, run, max(dp, process_count))
    for field in ("batch_size", "eval_batch_size"):
        size = getattr(run.data, field)
        multiple = max(dp, process_count)
        if size % multiple:
            lower = size // multiple * multiple or multiple
            raise ConfigError(
                f"config.{field}={size} does not divide over the {dp}-way data-parallel "
                f"mesh ({device_count} devices, {process_count} processes); use a multiple of "
                f"{multiple}, e.g. --config.{field}={lower}")
    return run


def _round_up_eval_batch(config: ml_collections.ConfigDict, run: RunConfig,
                         multiple: int) -> RunConfig:
    """Evaluation pads its last batch and masks the padding, so an eval batch that does not
    divide over the mesh is rounded up to the next multiple (every example still counts
    once); only the train batch must divide. The config records the size that ran."""
    size = run.data.eval_batch_size
    if size % multiple == 0:
        return run
    rounded = -(-size // multiple) * multiple
    logging.warning("config.eval_batch_size=%d does not divide over the %d-way data-parallel "
                    "mesh: rounded up to %d", size, multiple, rounded)
    config.eval_batch_size = rounded  # the data layer still reads the ConfigDict
    return dataclasses.replace(run, data=dataclasses.replace(run.data, eval_batch_size=rounded))


def _validate_sharding(run: RunConfig, device_count: int) -> None:
    """`config.sharding` against the mesh (the shapes come later: an fsdp size that divides
    no parameter is caught when the state's shardings are built)."""
    sharding = run.sharding
    try:
        sharding_rules.compile_rules(sharding.rules)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if sharding.strategy == "shard_map":
        fsdp = mesh_lib.mesh_shape(run.mesh, device_count)["fsdp"]
        if fsdp != 1:
            raise ConfigError(
                f"config.sharding.strategy='shard_map' keeps parameters replicated, so it needs "
                f"config.mesh.fsdp=1 (got {fsdp}); use --config.sharding.strategy=jit for FSDP")
        if sharding.rules:
            raise ConfigError(
                "config.sharding.rules apply to the 'jit' strategy only; 'shard_map' keeps "
                "parameters replicated: remove the rules or use --config.sharding.strategy=jit")


def build_model(run: RunConfig):
    """The configured model (its options were checked against its fields when parsed)."""
    return models.create(run.model.model_name, dtype=compute_dtype(run.model.dtype),
                         **run.model.kwargs)


def image_channels(data, info) -> int:
    """Channels the model sees: `image_channels` of the data section, or the dataset's own."""
    if data.image_channels:
        return int(data.image_channels)
    return int(info.num_channels or (info.image_shape[-1] if info.image_shape else 3))


def check_model_fits(run: RunConfig, model, tx: optax.GradientTransformation,
                     info) -> TracedInit:
    """The model's init traced once at the data's image shape; a failure names the image size,
    or the kernel options when the same model with "auto" kernels fits."""
    shape = (run.data.image_size, run.data.image_size, image_channels(run.data, info))
    try:
        return trace_init(model, tx, shape)
    except Exception as e:  # noqa: BLE001 - shape errors come in many exception types
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    options = dict(run.model.options)
    chosen = {k: options[k] for k in KERNEL_OPTIONS if options.get(k, "auto") != "auto"}
    if chosen and _fits(model.clone(**dict.fromkeys(chosen, "auto")), shape):
        raise ConfigError(
            f"{', '.join(f'config.model.{k}={v!r}' for k, v in chosen.items())} cannot run "
            f"model {run.model.model_name!r} ({first_line}); use 'auto' (each layer picks a "
            "kernel it supports)") from None
    raise ConfigError(
        f"config.image_size={run.data.image_size} does not fit model "
        f"{run.model.model_name!r} ({first_line}); choose an image size the model's "
        "down-sampling accepts") from None


def _fits(model, shape: tuple) -> bool:
    try:
        jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, *shape)),
                                          train=False))
    except Exception:  # noqa: BLE001 - any failure means it does not fit
        return False
    return True
