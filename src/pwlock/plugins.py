"""Plug-in registries: how elicitation methods and detectors are named, loaded and checked.

Both kinds are found the same way: a registered name (the built-ins register themselves when their
`builtins` module is imported), `module:attribute` or `path/to/file.py:attribute` (a class is
instantiated without arguments), or a name in an installed package's entry-point group. Each kind
brings its own `check(obj, spec)` for its protocol; every failure is a `MethodError` that starts
with the kind and the spec ("method sft: ...", "detector my.py:Probe: ..."), so a user knows which
plug-in to fix.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, Generic, Protocol, TypeVar

from pwlock.errors import MethodError


class Named(Protocol):
    name: str


T = TypeVar("T", bound=Named)


def import_file(path: str) -> ModuleType:
    """A module from a .py file (`path/to/method.py:Class`: no package or sys.path needed)."""
    file = Path(path).resolve()
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    name = f"pwlock_user_{file.stem}_{hashlib.blake2b(str(file).encode(), digest_size=4).hexdigest()}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def load(kind: str, what: str, loader: Callable[[], Any]) -> Any:
    """`loader()`, with any import-time failure of user code as a MethodError naming the plug-in."""
    try:
        return loader()
    except Exception as e:  # the user's code to fix, not a bug in pwlock
        raise MethodError(f"{kind} {what}: cannot be loaded: {type(e).__name__}: {e}") from None


def load_attribute(kind: str, spec: str) -> Any:
    """The object `module:attribute` or `file.py:attribute` names (dotted attributes allowed)."""
    module, _, attr = spec.rpartition(":")

    def loader() -> Any:
        obj: Any = import_file(module) if module.endswith(".py") else importlib.import_module(module)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    return load(kind, spec, loader)


def instantiate(kind: str, obj: Any, spec: str) -> Any:
    """`obj` itself, or an instance of it when it is a class (built without arguments)."""
    if not inspect.isclass(obj):
        return obj
    try:
        return obj()
    except Exception as e:
        raise MethodError(f"{kind} {spec}: {obj.__name__}() failed: {type(e).__name__}: {e}") from None


def check_plugin(kind: str, obj: Any, spec: str, settings: tuple[str, ...], call: str) -> None:
    """A clear error unless `obj` has a `name`, `settings` among `settings`, and is callable."""
    name, supported = getattr(obj, "name", None), getattr(obj, "settings", None)
    if not isinstance(name, str) or not name:
        raise MethodError(f"{kind} {spec}: needs a `name` (str) attribute")
    if not isinstance(supported, tuple | list) or not supported or not set(supported) <= set(settings):
        raise MethodError(f"{kind} {spec}: `settings` must be a non-empty tuple of {settings}, got {supported!r}")
    if not callable(obj):
        raise MethodError(f"{kind} {spec}: must be callable as {call}")


class Registry(Generic[T]):
    """The plug-ins of one kind: `register`, `registered`, `resolve`.

    kind: the word in error messages ("method", "detector"); group: the entry-point group;
    builtins: the module whose import registers the built-ins; check: raises MethodError unless an
    object implements the kind's protocol."""

    def __init__(self, kind: str, group: str, builtins: str, check: Callable[[Any, str], None]) -> None:
        self.kind, self.group, self.builtins, self.check = kind, group, builtins, check
        self._by_name: dict[str, T] = {}

    def register(self, obj: T) -> T:
        self.check(obj, repr(getattr(obj, "name", obj)))
        self._by_name[obj.name] = obj
        return obj

    def registered(self) -> dict[str, T]:
        """Every plug-in by name: the built-ins, then those of installed packages' entry points."""
        importlib.import_module(self.builtins)  # registers the built-ins
        for ep in entry_points(group=self.group):
            if ep.name not in self._by_name:
                self._by_name[ep.name] = self.build(load(self.kind, f"entry point {ep.name} ({ep.value})", ep.load),
                                                    ep.name)
        return dict(self._by_name)

    def resolve(self, spec: str) -> T:
        """The plug-in a user names: a registered name, or `module:attribute` / `file.py:attribute`."""
        if ":" not in spec:
            known = self.registered()
            if spec not in known:
                raise MethodError(f"{self.kind} {spec!r}: not registered (known: {', '.join(sorted(known))}); "
                                  "name your own as module:attribute")
            return known[spec]
        return self.build(load_attribute(self.kind, spec), spec)

    def build(self, obj: Any, spec: str) -> T:
        """`obj` (or an instance of it, for a class), checked against the protocol."""
        obj = instantiate(self.kind, obj, spec)
        self.check(obj, spec)
        plugin: T = obj
        return plugin
