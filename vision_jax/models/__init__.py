"""Model registry: models are chosen by name in the config (``config.model_name``).

Each model is a ``flax.linen.Module`` taking NHWC images and called as
``model.apply(variables, images, train=bool, rngs=...)``. A family module registers its
constructors with ``register(name, constructor)`` (or ``@MODELS.register(name)``); the
family modules listed in ``MODELS`` are imported the first time a name is looked up, so
``import vision_jax.models`` stays cheap. Adding a family: write the module, list it below.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable

import flax.linen as nn

from vision_jax.registry import Registry

_FAMILIES = ("seed_cnn", "vgg", "resnet", "yolo_v1", "fcos", "unet")
MODELS: Registry[Callable[..., nn.Module]] = Registry(
    "model", field="config.model_name", modules=[f"vision_jax.models.{f}" for f in _FAMILIES])


def register(name: str, constructor: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Adds ``constructor`` under ``name``; a name holds one constructor."""
    return MODELS.register(name, constructor)


def names() -> list[str]:
    """All registered model names, sorted."""
    return MODELS.names()


def create(name: str, **kwargs) -> nn.Module:
    """Builds the model registered as ``name`` with ``kwargs`` (num_classes, dtype, ...);
    an unknown name is a `ConfigError` naming config.model_name with the closest name."""
    constructor = MODELS.get(name)
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
