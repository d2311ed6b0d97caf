"""Registries found by import, without a central list.

A method module declares itself with `@METHODS.register("name")`. `METHODS.discover()` imports every
module inside the `xlcore.methods` package (big_vision's import-by-name) and every module that an
installed package advertises under the `xlcore.methods` entry-point group, so adding a method is adding
a file: no enum, no if/elif chain, no import list to edit (peft's `register_peft_method`, minus its enum).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import pkgutil
from typing import Callable, Generic, Iterator, TypeVar

from .errors import UnknownMethodError, XlcoreError

log = logging.getLogger(__name__)
T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> object, filled by modules that register themselves when imported."""

    def __init__(
        self,
        kind: str,
        package: str,
        entry_point_group: str,
        unknown_error: Callable[[str, list[str]], Exception] = UnknownMethodError,
    ):
        self.kind = kind
        self.unknown_error = unknown_error
        self.package = package
        self.entry_point_group = entry_point_group
        self._entries: dict[str, T] = {}
        self._discovered = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers the decorated object under `name` (and sets its `name` attribute)."""

        def decorate(obj: T) -> T:
            # An object may answer to further names (a method's `variants`, named presets of its settings);
            # only its own, not those it inherits, and without renaming it. All names are checked first.
            aliases = list(vars(obj).get("variants", {})) if isinstance(obj, type) else []
            for key in (name, *aliases):
                existing = self._entries.get(key)
                if existing is not None and existing is not obj:
                    raise XlcoreError(
                        f"{self.kind} {key!r} is registered twice: by {_where(existing)} and by {_where(obj)}"
                    )
            try:
                obj.name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            for key in (name, *aliases):
                self._entries[key] = obj
            return obj

        return decorate

    def unregister(self, name: str) -> None:
        """Remove `name` and the names it brought along (for tests that register a method of their own)."""
        obj = self._entries.pop(name, None)
        for alias in vars(obj).get("variants", {}) if isinstance(obj, type) else ():
            self._entries.pop(alias, None)

    def discover(self) -> None:
        """Import every module of the package and every advertised entry point (once)."""
        if self._discovered:
            return
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__, prefix=self.package + "."):
            if not module.name.rsplit(".", 1)[-1].startswith("_"):
                importlib.import_module(module.name)
        for entry_point in importlib.metadata.entry_points(group=self.entry_point_group):
            log.info("loading %s %s from entry point %s", self.kind, entry_point.name, entry_point.value)
            entry_point.load()
        self._discovered = True

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self.discover()
        return sorted(self._entries)

    def get(self, name: str) -> T:
        """The object registered as `name`; an unknown name raises an error listing the known ones."""
        self.discover()
        try:
            return self._entries[name]
        except KeyError:
            raise self.unknown_error(name, self.names()) from None

    def __contains__(self, name: str) -> bool:
        self.discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


def _where(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


METHODS: Registry = Registry("method", "xlcore.methods", "xlcore.methods")
