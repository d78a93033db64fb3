"""One small registry class for everything facegan builds by name (timm-style).

Both the GAN networks (:mod:`facegan.models`) and the lecture's CNNs (:mod:`facegan.cnn`) use
it, so names follow one rule everywhere: case, ``-`` and ``_`` don't matter (``LeNet-5`` ==
``lenet5``, ``vgg16_bn`` == ``vgg16-bn``), a name taken twice is an error, and an unknown name
is a :class:`~facegan.errors.FaceganError` that lists the valid ones.

A registry finds its own entries: given the package that holds them, the first lookup imports
every public module of that package, and each module's ``@REGISTRY.register(...)`` decorators
add its entries. Adding a model is one new file; no list of modules is kept by hand.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterator, TypeVar

from facegan.errors import FaceganError

T = TypeVar("T")


def normalize_name(name: str) -> str:
    """The lookup key of ``name``: lower case, without ``-`` and ``_``."""
    return name.lower().replace("-", "").replace("_", "")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered object.

    Attributes:
        name: the name it was registered under (as written there).
        obj: the class or builder function.
        config: its config dataclass (``obj(config_instance)`` builds it), or None for
            builders that take keyword arguments.
        meta: anything else the registry's users want to know (input shapes, descriptions).
    """

    name: str
    obj: T
    config: type | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Registry(Generic[T]):
    """Named entries of one kind (``"generator"``, ``"model"``...).

    Args:
        kind: what an entry is, for messages ("unknown generator 'x'").
        package: dotted name of the package whose public modules register the built-in
            entries; they are imported on the first lookup (keeps ``import facegan`` light).
    """

    def __init__(self, kind: str, package: str | None = None):
        self.kind = kind
        self.package = package
        self._entries: dict[str, Entry[T]] = {}
        self._discovered = package is None

    def register(self, name: str, *, config: type | None = None, **meta: Any) -> Callable[[T], T]:
        """Decorator: register the decorated class or function as ``name``."""

        def deco(obj: T) -> T:
            self.add(name, obj, config=config, **meta)
            return obj

        return deco

    def add(self, name: str, obj: T, *, config: type | None = None, **meta: Any) -> Entry[T]:
        """Register ``obj`` as ``name``. Registering the same object again (a module imported
        twice, e.g. by a test runner) is allowed; another object under a taken name is not."""
        key = normalize_name(name)
        old = self._entries.get(key)
        if old is not None and not _same_object(old.obj, obj):
            raise ValueError(f"{self.kind} {name!r} is already registered to {_qualname(old.obj)}")
        entry = Entry(name, obj, config, dict(meta))
        self._entries[key] = entry
        return entry

    def remove(self, name: str) -> None:
        """Forget ``name`` (for tests that register throwaway entries)."""
        self._entries.pop(normalize_name(name), None)

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self.package)
        for mod in pkgutil.iter_modules(pkg.__path__):
            if not mod.name.startswith("_"):
                importlib.import_module(f"{self.package}.{mod.name}")

    def get(self, name: str) -> Entry[T]:
        """The entry for ``name``; unknown names raise a FaceganError listing the valid ones."""
        self._discover()
        try:
            return self._entries[normalize_name(name)]
        except KeyError:
            valid = ", ".join(self.names()) or "(none)"
            raise FaceganError(f"unknown {self.kind} {name!r}; registered {self.kind}s: {valid}") from None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        self._discover()
        return [e.name for e in self._entries.values()]

    def __contains__(self, name: object) -> bool:
        self._discover()
        return isinstance(name, str) and normalize_name(name) in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        self._discover()
        return iter(list(self._entries.values()))


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _same_object(a: Any, b: Any) -> bool:
    # A module re-imported under a test runner defines a new class object with the same name.
    return a is b or _qualname(a) == _qualname(b)
