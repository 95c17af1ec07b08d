"""One `Registry` primitive for every table chosen by name in a config.

Models, tasks, dataset schemes, optimizers, schedules, kernel implementations and
augmentation ops are each one `Registry`. A component registers itself where it is
defined, by decorator or by a direct call::

    MODELS = Registry("model", field="config.model.name", modules=["vision_jax.models.vgg"])

    @MODELS.register("vgg16")
    def vgg16(**kwargs): ...

    MODELS.register("resnet18", functools.partial(ResNet, stages=(2, 2, 2, 2)))

`modules` are imported the first time a name is looked up or listed, so importing the
package that holds a registry stays cheap and modules that register into it never form an
import cycle with it. A miss is a `ConfigError` that names the config field, suggests the
closest name and lists the known ones.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar, overload

from vision_jax.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object, with lazy registration and one-line errors on a miss.

    kind: what the entries are, for messages ("model", "optimizer").
    field: the config field that names an entry, for messages ("config.optimizer.name").
    modules: modules whose import registers entries; imported on first lookup.
    """

    def __init__(self, kind: str, *, field: str | None = None, modules: Iterable[str] = ()):
        self.kind = kind
        self.field = field
        self._modules = list(modules)
        self._entries: dict[str, T] = {}
        self._loaded = not self._modules

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: Any = None):
        """Adds `obj` under `name`, or returns a decorator that does. Registering the very same
        object twice is a no-op (a module may be imported twice); another object under a taken
        name is an error."""
        if obj is None:
            return lambda target: self.register(name, target)
        existing = self._entries.get(name)
        if existing is not None and existing is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered ({existing!r})")
        self._entries[name] = obj
        return obj

    def remove(self, name: str) -> None:
        """Takes ``name`` out again (a test's temporary entry); a missing name is a no-op."""
        self._entries.pop(name, None)

    def add_modules(self, *modules: str) -> None:
        """More modules to import before the next lookup (e.g. a plug-in's)."""
        self._modules.extend(modules)
        self._loaded = False

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # before importing: the modules call back into `register`
        for module in self._modules:
            importlib.import_module(module)

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._load()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def get(self, name: str, *, field: str | None = None) -> T:
        """The entry for `name`; a `ConfigError` naming `field` (default: the registry's) with a
        "did you mean" and the known names when there is none."""
        self._load()
        if name in self._entries:
            return self._entries[name]
        raise ConfigError(self.unknown_message(name, field=field))

    def unknown_message(self, name: str, *, field: str | None = None) -> str:
        """``config.x='nme' is unknown; did you mean 'name'? known models: a, b, c``."""
        field = field or self.field
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ";"
        subject = f"{field}={name!r}" if field else f"{self.kind} {name!r}"
        return f"{subject} is unknown{hint} known {self.kind}s: {', '.join(known)}"

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"
