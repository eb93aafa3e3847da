"""Registries: a name -> object table filled by a decorator, for the parts of the package chosen by name.

A string setting (``Config.BACKBONE``, a dataset format, ...) is looked up in its registry instead of an
if/elif chain, so adding a part is one decorated function and every place that lists or checks the names
reads the same table::

    BACKBONES = Registry("backbone", hint="register one with @register_backbone(name)")

    @BACKBONES.register("my_net")
    def my_net(input_image, stage5=True, train_bn=True): ...

    BACKBONES.get("my_net")        # the function
    BACKBONES.get("nope")          # UnknownNameError: unknown backbone 'nope'; known: ..., my_net

An entry can also be *declared* as ``"module:attribute"``: its name is known at once (validation, ``--help``)
while the module is imported only when the entry is first used. The built-in backbones are declared that
way, so checking a ``Config`` needs no TensorFlow.

This module imports nothing beyond the standard library.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar, overload

T = TypeVar("T")

__all__ = ["Registry", "UnknownNameError"]


class UnknownNameError(ValueError):
    """A name that no entry of a registry has; the message lists the names it has."""

    def __init__(self, kind: str, name: Any, known: tuple[str, ...], hint: str | None = None):
        self.kind, self.name, self.known = kind, name, known
        message = f"unknown {kind} {name!r}; known: {', '.join(known) or '(none)'}"
        super().__init__(message + (f" ({hint})" if hint else ""))


class _Declared:
    """A lazily imported entry: ``module:attribute``."""

    __slots__ = ("target",)

    def __init__(self, target: str):
        if ":" not in target:
            raise ValueError(f"a declared entry is 'module:attribute', got {target!r}")
        self.target = target

    def load(self) -> Any:
        module, attribute = self.target.split(":", 1)
        return getattr(importlib.import_module(module), attribute)


class Registry(Generic[T]):
    """Named objects of one kind, in registration order.

    kind: what an entry is, for messages ("backbone", "dataset format"). hint: appended to the unknown-name
    error, e.g. how to register one.
    """

    def __init__(self, kind: str, hint: str | None = None):
        self.kind = kind
        self.hint = hint
        self._entries: dict[str, T | _Declared] = {}

    # -- filling ---------------------------------------------------------------------------------------------

    @overload
    def register(self, name: str, obj: None = None, *, replace: bool = False) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T, *, replace: bool = False) -> T: ...

    def register(self, name: str, obj: T | None = None, *, replace: bool = False):
        """Register ``obj`` under ``name``; without ``obj``, a decorator that registers what it decorates.

        A name already taken by another object is an error unless ``replace`` (registering the same object
        again, e.g. when its module is reloaded, is not). Returns ``obj`` (the decorated object unchanged).
        """
        if obj is None:

            def decorator(target: T) -> T:
                return self.register(name, target, replace=replace)

            return decorator
        self._check_name(name)
        current = self._entries.get(name)
        if current is not None and not replace and not self._is(current, obj):
            raise ValueError(
                f"{self.kind} {name!r} is already registered ({self._describe(current)}); pass replace=True "
                "to register another under that name"
            )
        self._entries[name] = obj
        return obj

    def declare(self, name: str, target: str) -> None:
        """Register ``name`` for the object at ``target`` ("module:attribute"), imported on first use."""
        self._check_name(name)
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = _Declared(target)

    def unregister(self, name: str) -> None:
        """Remove an entry (tests registering temporary entries clean up with this)."""
        self._entries.pop(name, None)

    # -- reading ---------------------------------------------------------------------------------------------

    def get(self, name: str) -> T:
        """The object registered as ``name``; :class:`UnknownNameError` listing the known names if none."""
        try:
            entry = self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self.names(), self.hint) from None
        if isinstance(entry, _Declared):
            entry = self._entries[name] = entry.load()
        return entry

    def names(self) -> tuple[str, ...]:
        """Every registered name, in registration order."""
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}: {', '.join(self._entries)})"

    # -- helpers ---------------------------------------------------------------------------------------------

    def _check_name(self, name: str) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name is a non-empty str, got {name!r}")

    @staticmethod
    def _is(current: Any, obj: Any) -> bool:
        if isinstance(current, _Declared):
            module, attribute = current.target.split(":", 1)
            return getattr(obj, "__module__", None) == module and getattr(obj, "__name__", None) == attribute
        return current is obj

    @staticmethod
    def _describe(entry: Any) -> str:
        if isinstance(entry, _Declared):
            return entry.target
        return f"{getattr(entry, '__module__', '?')}.{getattr(entry, '__qualname__', repr(entry))}"
