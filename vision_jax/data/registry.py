"""`BUILTINS`: the built-in, offline datasets (`builtin:<name>`), name -> TFDS builder class.

A dataset module registers itself with one `register_builtin(name, cls)` call at import time;
the modules of `vision_jax.data.builtin` are imported the first time a name is looked up.
"""

from __future__ import annotations

import inspect

import tensorflow_datasets as tfds
from etils import epath

from vision_jax.registry import Registry

BUILTINS: Registry[type[tfds.core.GeneratorBasedBuilder]] = Registry(
    "built-in dataset", field="config.dataset", modules=["vision_jax.data.builtin"])


def register_builtin(name: str, builder_class: type[tfds.core.GeneratorBasedBuilder]) -> None:
    """Makes `builtin:<name>` resolve to `builder_class` (a TFDS GeneratorBasedBuilder).

    The builder must prepare itself offline with `file_format="array_record"`.
    Registering the same class twice is a no-op (modules can be re-imported);
    registering a different class under a taken name is an error.
    """
    if not (isinstance(builder_class, type)
            and issubclass(builder_class, tfds.core.GeneratorBasedBuilder)):
        raise TypeError(
            f"register_builtin({name!r}, ...): builder_class must be a "
            f"tfds.core.GeneratorBasedBuilder subclass, got {builder_class!r}")
    if "code_path" not in vars(builder_class):
        # TFDS finds a builder's source file through `importlib_resources`, a package it
        # only depends on for Python < 3.9, so preparing fails on 3.11 without this.
        builder_class.code_path = epath.Path(inspect.getfile(builder_class))
    try:
        BUILTINS.register(name, builder_class)
    except ValueError:
        raise ValueError(
            f"register_builtin: name {name!r} is already taken by "
            f"{BUILTINS.get(name).__qualname__}; pick another name") from None


def builtin_names() -> list[str]:
    """Sorted names usable as `builtin:<name>`."""
    return BUILTINS.names()
