"""Typed, frozen config sections built once from an `ml_collections.ConfigDict`.

Users keep writing ml_collections config files and ``--config.x=y`` overrides; at the
boundary each group of fields becomes a frozen dataclass whose fields carry their own
description and checks, and lower layers receive only their section::

    @dataclasses.dataclass(frozen=True)
    class OptimizerSection:
        name: str = option("adam", "registered optimizer name")
        learning_rate: float = option(1e-3, "peak learning rate", check=positive)

    section = build(OptimizerSection, config.optimizer, "config.optimizer")

`build` rejects unknown fields (with a "did you mean"), wrong types and failed checks with
one `ConfigError` line that names the full field path; fields declared with `REQUIRED` must
be set. A field whose type is itself a section is built recursively from a sub-group. A
section that lost fields may say where they went in a class attribute
``MOVED_FIELDS: ClassVar[Mapping[str, str]]`` ({old field: "is ... now; set ..."}), so an
old config is told where to move a field rather than only that it is unknown.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from vision_jax.errors import ConfigError

S = TypeVar("S")
# A check returns None when the value is fine, else the end of a sentence: "must be positive".
Check = Callable[[Any], str | None]


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # the default of a field a config must set


def option(default: Any, doc: str, *, check: Check | Sequence[Check] | None = None) -> Any:
    """A dataclass field with its description and checks (run by `build`)."""
    checks = () if check is None else (check,) if callable(check) else tuple(check)
    metadata = {"doc": doc, "checks": checks}
    if isinstance(default, list | dict | set):
        raise TypeError("section defaults must be immutable: use a tuple")
    return dataclasses.field(default=default, metadata=metadata)


# -- checks ---------------------------------------------------------------------------------


def positive(value) -> str | None:
    return None if value > 0 else "must be positive"


def non_negative(value) -> str | None:
    return None if value >= 0 else "must be >= 0"


def in_range(low: float, high: float, *, low_open: bool = False,
             high_open: bool = False) -> Check:
    """low <= value <= high (open ends exclude the bound)."""
    def check(value) -> str | None:
        ok = (value > low if low_open else value >= low) and (
            value < high if high_open else value <= high)
        return None if ok else (f"must be in {'(' if low_open else '['}{low}, {high}"
                                f"{')' if high_open else ']'}")
    return check


def one_of(*choices: Any) -> Check:
    def check(value) -> str | None:
        return None if value in choices else f"must be one of {', '.join(map(repr, choices))}"
    return check


def registered(registry: Any) -> Check:
    """The value names an entry of `registry` (a `vision_jax.registry.Registry`)."""
    def check(value) -> str | None:
        if value in registry:
            return None
        known = registry.names()
        close = difflib.get_close_matches(str(value), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ";"
        return f"is unknown{hint} known {registry.kind}s: {', '.join(known)}"
    return check


# -- building -------------------------------------------------------------------------------


def fields_of(cls: type) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def build(cls: type[S], values: Mapping[str, Any] | None, prefix: str) -> S:
    """`cls` from a ConfigDict / mapping; every problem is a one-line `ConfigError`."""
    values = {} if values is None else _as_dict(values, prefix)
    known = fields_of(cls)
    hints = typing.get_type_hints(cls)
    moved = getattr(cls, "MOVED_FIELDS", {})
    for key in values:
        if key in moved and key not in known:
            raise ConfigError(f"{prefix}.{key} {moved[key]}")
        if key not in known:
            close = difflib.get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {prefix}.{close[0]}?" if close else (
                f"; known fields: {', '.join(known)}")
            raise ConfigError(f"{prefix}.{key} is not a known field{hint}")
    kwargs = {}
    for name, f in known.items():
        path = f"{prefix}.{name}"
        if values.get(name) is None and f.default is REQUIRED:
            # None is how an ml_collections placeholder reads before it is set.
            raise ConfigError(f"{path} is required: {f.metadata.get('doc', 'set it')}; set "
                              f"it in the config file or with --{path}=...")
        if name not in values:
            if dataclasses.is_dataclass(hints.get(name)) and f.default is dataclasses.MISSING:
                kwargs[name] = build(hints[name], None, path)
            continue
        value = _coerce(values[name], hints.get(name, Any), path)
        for check in f.metadata.get("checks", ()):
            problem = check(value)
            if problem:
                raise ConfigError(f"{path}={value!r} {problem}")
        kwargs[name] = value
    return cls(**kwargs)


def to_dict(section: Any) -> dict[str, Any]:
    """The section as plain Python values (nested sections as dicts), e.g. for config.json."""
    return dataclasses.asdict(section)


def _as_dict(values: Any, prefix: str) -> dict[str, Any]:
    if hasattr(values, "to_dict"):
        return values.to_dict()
    if isinstance(values, Mapping):
        return dict(values)
    raise ConfigError(f"{prefix} must be a group of fields, got {values!r}")


def _coerce(value: Any, hint: Any, path: str) -> Any:
    """`value` as the field's declared type: int -> float, list -> tuple, sub-sections built;
    anything else of the wrong type is an error."""
    if hint is Any:
        return value
    if dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else build(hint, value, path)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        for option_type in options:
            if option_type is type(None):
                continue
            try:
                return _coerce(value, option_type, path)
            except ConfigError:
                continue
        raise ConfigError(f"{path}={value!r} has type {type(value).__name__}; it must be "
                          f"{_type_name(hint)}")
    if origin is tuple or hint is tuple:
        if not isinstance(value, tuple | list):
            raise ConfigError(f"{path}={value!r} must be a tuple, e.g. ({value!r},)")
        args = typing.get_args(hint)
        if args and args[-1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{path}={tuple(value)!r} must have {len(args)} values")
        return tuple(_coerce(v, a, f"{path}[{i}]") for i, (v, a) in
                     enumerate(zip(value, args, strict=True))) if args else tuple(value)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(hint, type):
        if isinstance(value, hint) and not (isinstance(value, bool) and hint is not bool):
            return value
        raise ConfigError(f"{path}={value!r} has type {type(value).__name__}; it must be "
                          f"{_type_name(hint)}")
    return value


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")
