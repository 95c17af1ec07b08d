"""Model registry: models are chosen by name in the config.

Each model is a ``flax.linen.Module`` taking NHWC images and called as
``model.apply(variables, images, train=bool, rngs=...)``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import flax.linen as nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register(name: str, constructor: Callable[..., nn.Module]) -> None:
    """Adds ``constructor`` under ``name``; names are unique."""
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is already registered")
    _REGISTRY[name] = constructor


def names() -> list[str]:
    """All registered model names, sorted."""
    _import_families()
    return sorted(_REGISTRY)


def create(name: str, **kwargs) -> nn.Module:
    """Builds the model registered as ``name`` with ``kwargs`` (num_classes, dtype, ...)."""
    _import_families()
    if name not in _REGISTRY:
        known = ", ".join(sorted(_REGISTRY))
        raise ValueError(f"unknown model {name!r}: set config.model_name to one of {known}")
    constructor = _REGISTRY[name]
    _check_arguments(name, constructor, kwargs)
    return constructor(**kwargs)


def _check_arguments(name: str, constructor: Callable[..., nn.Module], kwargs: dict) -> None:
    # A one-line error naming the bad argument beats a dataclass error deep in a stack. It stays
    # a TypeError (the usual type for a bad keyword) so callers can catch it as one.
    parameters = inspect.signature(constructor).parameters
    accepted = [p for p in parameters if p not in ("parent", "name")]
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unexpected = [key for key in kwargs if key not in parameters]
    if unexpected and not takes_any:
        raise TypeError(f"model {name!r} got unexpected argument(s) {', '.join(unexpected)}; "
                        f"it accepts {', '.join(accepted)}")
    missing = [p for p, spec in parameters.items()
               if spec.default is inspect.Parameter.empty and p not in kwargs
               and spec.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                 inspect.Parameter.KEYWORD_ONLY)]
    if missing:
        raise TypeError(f"model {name!r} needs argument(s) {', '.join(missing)}")


def _import_families() -> None:
    # Importing a family module registers its names; deferred so that
    # `import vision_jax.models` stays cheap.
    import importlib

    for module in _FAMILIES:
        importlib.import_module(f"vision_jax.models.{module}")


# Modules under vision_jax/models/ that call `register` when imported.
_FAMILIES: list[str] = ["seed_cnn", "vgg", "resnet", "yolo_v1", "fcos", "unet"]
