"""The config, parsed once at the boundary into typed, frozen sections.

`parse_config` turns the user's `ml_collections.ConfigDict` (what config files and
``--config.x=y`` overrides produce) into a `RunConfig`: one section per area, each
validated next to its fields (see `vision_jax.sections`). Lower layers receive their
section, not the whole config: the data pipeline its `DataSection`, the on-device
augmentation its `AugmentSection` (and the data section's normalisation), the optimiser its
`OptimizerSection` and `ScheduleSection`, the task its options section, sharding its
`ShardingSection`, the loop its `LoopSection`. Every problem is one `ConfigError` line
naming the field.

``config.model`` is checked against the chosen model: a key it does not take is an error;
a model whose fields are declared with `vision_jax.sections.option` (the detectors) gets
them typed and checked like any section, and a model with a ``check(image_size,
configured)`` method (`vision_jax.models.detector.Detector`) checks the input size and the
options it would leave unused.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import inspect
from collections.abc import Mapping
from typing import Any

import ml_collections

from vision_jax import models
from vision_jax.augment.section import AugmentSection, augment_section
from vision_jax.data.config import DataSection, data_section
from vision_jax.errors import ConfigError
from vision_jax.models.detector import options_section
from vision_jax.sections import (
    REQUIRED,
    build,
    in_range,
    non_negative,
    option,
    positive,
    registered,
)
from vision_jax.tasks import TASKS
from vision_jax.training.defaults import default_config
from vision_jax.training.optimizer import OptimizerSection, ScheduleSection
from vision_jax.weights.section import TransferSection, transfer_section

# float16 is not offered: without loss scaling its gradients underflow, and TPUs compute in
# bfloat16 (same range as float32) natively.
DTYPES = ("float32", "bfloat16")
# Ranges of the common `config.model` options (each model declares which it takes).
MODEL_OPTION_CHECKS = {"dropout_rate": in_range(0.0, 1.0, high_open=True)}
STRATEGIES = ("jit", "shard_map")


def _axis_size(value: int) -> str | None:
    return None if value == -1 or value >= 1 else "must be -1 (all remaining devices) or >= 1"


class _Indexable:
    def __getitem__(self, name: str) -> Any:  # the parallel layer reads mesh["data"]
        return getattr(self, name)


@dataclasses.dataclass(frozen=True)
class MeshSection(_Indexable):
    """``config.mesh``: device mesh axes; -1 = all remaining devices."""

    data: int = option(-1, "data-parallel axis size (-1 = the rest)", check=_axis_size)
    fsdp: int = option(1, "parameter-sharding axis size (-1 = the rest)", check=_axis_size)


@dataclasses.dataclass(frozen=True)
class ShardingSection:
    """``config.sharding`` (docs/sharding.md)."""

    strategy: str = option("jit", "jit (GSPMD, FSDP rules) | shard_map (replicated params)",
                           check=lambda v: None if v in STRATEGIES else
                           f"is unknown; use one of {list(STRATEGIES)}")
    fsdp_min_size: int = option(2**18, "parameters with fewer elements stay replicated",
                                check=non_negative)
    rules: Any = option((), "((regex, spec), ...) overriding the default partitioning")


@dataclasses.dataclass(frozen=True)
class LoopSection:
    """How long to train and how often to log, evaluate and checkpoint."""

    num_epochs: float = option(10.0, "training length in epochs (when num_steps == 0)",
                               check=non_negative)
    num_steps: int = option(0, "> 0: train exactly this many steps", check=non_negative)
    log_every_steps: int = option(50, "train metrics every N steps", check=positive)
    eval_every_steps: int = option(0, "evaluate every N steps (0 = once per epoch); the last "
                                      "step always evaluates", check=non_negative)
    checkpoint_every_steps: int = option(0, "checkpoint every N steps (0 = once per epoch)",
                                         check=non_negative)
    keep_checkpoints: int = option(3, "checkpoints kept", check=positive)
    progress_bar: bool = option(True, "a tqdm bar on the console")
    allow_config_change: bool = option(False, "continue a workdir's run under a changed config "
                                              "(recorded in its config_changes.jsonl)")


def _dtype(value: str) -> str | None:
    if value in DTYPES:
        return None
    return (f"is not supported; use one of {', '.join(DTYPES)} (float16 needs loss scaling, "
            "which the trainer does not do; bfloat16 halves memory with float32's range)")


def _model_name(name: str) -> str | None:
    if name in models.names():
        return None
    close = difflib.get_close_matches(str(name), models.names(), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ";"
    return f"is unknown{hint} known models: {', '.join(models.names())}"


@dataclasses.dataclass(frozen=True)
class ModelSection:
    """The model: its registered name, its class count, compute dtype and own options."""

    model_name: str = option("seed_cnn", "registered model name", check=_model_name)
    num_classes: int = option(REQUIRED, "the number of classes", check=positive)
    dtype: str = option("float32", "compute dtype (params stay float32)", check=_dtype)
    # config.model, checked against the model's own fields (by `parse_config`, which fills
    # this in), as sorted (key, value) pairs.
    options: tuple = option((), "config.model")

    @property
    def kwargs(self) -> dict[str, Any]:
        """The model's keyword arguments (options, num_classes; dtype is the caller's)."""
        return {"num_classes": self.num_classes, **dict(self.options)}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Every section of a run, built once by `parse_config`."""

    task: str
    model: ModelSection
    data: DataSection
    augment: AugmentSection
    optimizer: OptimizerSection
    schedule: ScheduleSection
    mesh: MeshSection
    sharding: ShardingSection
    loop: LoopSection
    task_options: Any  # the task's options section (None for a task that declares none)
    transfer: TransferSection = TransferSection()  # init_from, freeze, the two-phase recipe


def _values(config: ml_collections.ConfigDict, cls: type) -> dict[str, Any]:
    return {f.name: config[f.name] for f in dataclasses.fields(cls) if f.name in config}


def _check_known_fields(config: ml_collections.ConfigDict) -> None:
    """Every top-level field known, every one present (a config is built from
    `default_config`, and a workdir's config.json holds them all)."""
    known = list(default_config().keys())
    for key in config.keys():
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean config.{close[0]}?" if close else ""
            raise ConfigError(f"config.{key} is not a known field{hint}")
    for key in known:
        if key not in config:
            raise ConfigError(f"config.{key} is missing; build the config from "
                              "vision_jax.training.defaults.default_config()")


def parse_config(config: ml_collections.ConfigDict) -> RunConfig:
    """The typed sections of `config`; one `ConfigError` line for the first problem."""
    _check_known_fields(config)
    data = data_section(config)
    augment = augment_section(config.get("augment"))
    task_name = config.task
    problem = registered(TASKS)(task_name)
    if problem:
        raise ConfigError(f"config.task={task_name!r} {problem}")
    model = build(ModelSection, _values(config, ModelSection), "config")
    # The task's rules first (e.g. detection needs a detector), then config.model against
    # the model the task accepted.
    task_options = _task_options(config, task_name, model, augment)
    configured = config.get("model") or {}
    model = dataclasses.replace(model, options=tuple(sorted(
        model_options(model.model_name, configured).items())))
    _check_model(model, data.image_size, tuple(configured.keys()))
    return RunConfig(
        task=task_name, model=model, data=data, augment=augment,
        optimizer=build(OptimizerSection, config.get("optimizer"), "config.optimizer"),
        schedule=build(ScheduleSection, config.get("schedule"), "config.schedule"),
        mesh=build(MeshSection, config.get("mesh"), "config.mesh"),
        sharding=build(ShardingSection, config.get("sharding"), "config.sharding"),
        loop=_loop_section(config), task_options=task_options,
        transfer=transfer_section(config))


def _loop_section(config: ml_collections.ConfigDict) -> LoopSection:
    loop = build(LoopSection, _values(config, LoopSection), "config")
    if loop.num_steps <= 0 and loop.num_epochs <= 0:
        raise ConfigError("set config.num_epochs or config.num_steps to a positive value")
    return loop


def _group(config: ml_collections.ConfigDict, name: str) -> dict[str, Any]:
    group = config.get(name)
    return group.to_dict() if hasattr(group, "to_dict") else dict(group or {})


def _task_options(config: ml_collections.ConfigDict, task_name: str, model: ModelSection,
                  augment: AugmentSection) -> Any:
    """The chosen task's options section; another task's options set are an error."""
    defaults = default_config()
    for other in TASKS.names():
        if other == task_name:
            continue
        entry = TASKS.get(other)
        if entry.group:
            for key in _group(config, entry.group):
                raise ConfigError(
                    f"config.{entry.group}.{key} is set but config.task={task_name!r} does not "
                    f"use it (it belongs to task {other!r}); remove it")
        elif entry.options is not None:
            for f in dataclasses.fields(entry.options):
                if f.name in config and config[f.name] != defaults.get(f.name):
                    raise ConfigError(
                        f"config.{f.name}={config[f.name]!r} is set but config.task="
                        f"{task_name!r} does not use it (it belongs to task {other!r}); "
                        "remove it")
    entry = TASKS.get(task_name)
    if entry.options is None:
        return None
    if entry.group:
        options = build(entry.options, config.get(entry.group), f"config.{entry.group}")
    else:
        options = build(entry.options, _values(config, entry.options), "config")
    if entry.check is not None:
        entry.check(options, num_classes=model.num_classes, augment=augment, model=model)
    return options


def model_fields(name: str) -> tuple[str, ...] | None:
    """The fields the registered model `name` takes (None when they cannot be read)."""
    constructor = _constructor(name)
    while isinstance(constructor, functools.partial):
        constructor = constructor.func
    if dataclasses.is_dataclass(constructor):
        return tuple(f.name for f in dataclasses.fields(constructor)
                     if f.name not in ("parent", "name"))
    try:
        parameters = inspect.signature(constructor).parameters
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    return tuple(p for p in parameters if p not in ("parent", "name"))


def _constructor(name: str):
    models.names()  # imports the families
    registry = getattr(models, "MODELS", None)
    if registry is not None:
        return registry.get(name, field="config.model_name")
    return models._REGISTRY[name]  # noqa: SLF001 - until models move to vision_jax.registry


def model_options(name: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """`config.model` checked against model `name`'s own fields: a key the model does not
    take is an error naming it, unless it holds `default_config`'s neutral value (the
    defaults offer every model's common options, e.g. conv_impl, and are then dropped).
    A model whose fields are typed options (`vision_jax.sections.option`) has them built as
    a section: types coerced, checks run, unknown keys named with a "did you mean"."""
    options = options.to_dict() if hasattr(options, "to_dict") else dict(options)
    fields = model_fields(name)
    if fields is None:
        return options
    neutral = default_config().model.to_dict()
    typed = _typed_options(name)
    kept = {}
    for key, value in options.items():
        if key in fields:
            problem = MODEL_OPTION_CHECKS[key](value) if key in MODEL_OPTION_CHECKS else None
            if problem:
                raise ConfigError(f"config.model.{key}={value!r} {problem}")
            kept[key] = value
        elif key in neutral and neutral[key] == value:
            continue
        elif typed is not None:
            kept[key] = value  # the section names it, with a "did you mean"
        else:
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"did you mean config.model.{close[0]}? " if close else ""
            raise ConfigError(
                f"config.model.{key} is not a field of model {name!r}; {hint}its fields: "
                f"{', '.join(f for f in fields if f not in ('num_classes', 'dtype'))}")
    if typed is None:
        return kept
    section = build(typed, kept, "config.model")
    return {key: getattr(section, key) for key in kept}


def _typed_options(name: str) -> type | None:
    """The options section of a model whose fields are declared with `option`, else None."""
    constructor = _constructor(name)
    while isinstance(constructor, functools.partial):
        constructor = constructor.func
    if not (isinstance(constructor, type) and dataclasses.is_dataclass(constructor)):
        return None
    section = options_section(constructor)
    return section if dataclasses.fields(section) else None


def _check_model(model: ModelSection, image_size: int, configured: tuple[str, ...]) -> None:
    """The model's own check of the input size and of the options it would leave unused."""
    module = models.create(model.model_name, **model.kwargs)
    check = getattr(module, "check", None)
    if callable(check):
        problem = check(image_size, configured)
        if problem:
            raise ConfigError(problem)
