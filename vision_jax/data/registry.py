"""Name -> TFDS builder class registry for the built-in, offline datasets (`builtin:<name>`).

A plain dict so that a dataset module registers itself with one call at import
time, and `vision_jax.data.builtin/__init__.py` stays a list of imports.
"""

from __future__ import annotations

import inspect

import tensorflow_datasets as tfds
from etils import epath

_BUILTIN_BUILDERS: dict[str, type[tfds.core.GeneratorBasedBuilder]] = {}


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
    existing = _BUILTIN_BUILDERS.get(name)
    if existing is not None and existing is not builder_class:
        raise ValueError(
            f"register_builtin: name {name!r} is already taken by {existing.__qualname__}; "
            "pick another name")
    if "code_path" not in vars(builder_class):
        # TFDS finds a builder's source file through `importlib_resources`, a package it
        # only depends on for Python < 3.9, so preparing fails on 3.11 without this.
        builder_class.code_path = epath.Path(inspect.getfile(builder_class))
    _BUILTIN_BUILDERS[name] = builder_class


def builtin_names() -> list[str]:
    """Sorted names usable as `builtin:<name>` (after `vision_jax.data.builtin` is imported)."""
    _import_builtins()
    return sorted(_BUILTIN_BUILDERS)


def get_builtin(name: str) -> type[tfds.core.GeneratorBasedBuilder] | None:
    """The builder class registered as `name`, or None."""
    _import_builtins()
    return _BUILTIN_BUILDERS.get(name)


def _import_builtins() -> None:
    # Imported lazily: the dataset modules import this one to register themselves.
    import vision_jax.data.builtin  # noqa: F401
