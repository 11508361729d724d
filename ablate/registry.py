"""One table of names per extension point, and how a grid's ``module:function`` resolves.

Each extension point (tricks, models, datasets, backends, executors) owns one
:class:`Registry`, defined next to what it registers. Built-ins are its first entries; a user
plug-in takes the same path: a grid entry naming ``module:function``, or an installed package
declaring an entry point in the registry's group (``ablate.models``, ``ablate.datasets``).
Nothing outside a registry spells out its names.
"""

from __future__ import annotations

import difflib
import importlib
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

from ablate.errors import AblateError, ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> entry, in registration order. ``group`` names the entry-point group, if any."""

    def __init__(self, kind: str, *, group: str | None = None,
                 from_entry_point: Callable[[str, Any], T] | None = None):
        self.kind = kind
        self.group = group
        self._from_entry_point = from_entry_point
        self._entries: dict[str, T] = {}
        self._entry_points_loaded = group is None

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"{self.kind} names must be non-empty strings, but got {name!r}")
        if name in self._entries and not replace:
            raise ConfigError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            if ep.name in self._entries:
                continue  # a built-in or an earlier plug-in keeps its name
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001 - a broken plug-in is named, not fatal for others
                print(f"ablate: warning: entry point {ep.name!r} in {self.group} ({ep.value}) "
                      f"failed to load: {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            entry = self._from_entry_point(ep.name, obj) if self._from_entry_point else obj
            self._entries[ep.name] = entry

    def names(self) -> tuple[str, ...]:
        self._load_entry_points()
        return tuple(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def items(self) -> list[tuple[str, T]]:
        self._load_entry_points()
        return list(self._entries.items())

    def get(self, name: str) -> T:
        """The entry for ``name``, or a one-line error listing the known names (closest first)."""
        self._load_entry_points()
        if name in self._entries:
            return self._entries[name]
        raise ConfigError(self.unknown(name))

    def unknown(self, name: Any) -> str:
        known = self.names()
        close = difflib.get_close_matches(str(name), known, n=3)
        hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
        return f"unknown {self.kind} {name!r}{hint}; known: {', '.join(known)}"


def is_reference(value: Any) -> bool:
    """Whether ``value`` looks like ``package.module:attribute``."""
    if not isinstance(value, str) or value.count(":") != 1:
        return False
    module, attr = value.split(":")
    return bool(module) and bool(attr) and all(p.isidentifier() for p in module.split(".")) \
        and all(p.isidentifier() for p in attr.split("."))


def resolve(reference: str, search_paths: Sequence[str | Path] = ()) -> Any:
    """Import ``module:attribute``, looking in ``search_paths`` first, then installed packages.

    The search paths go to the front of ``sys.path`` for good, so a worker that resolves one
    user module keeps finding its siblings. Raises a one-line AblateError naming the
    reference and the reason.
    """
    if not is_reference(reference):
        raise AblateError(f"{reference!r} is not a reference of the form 'module:function'")
    module_name, attr = reference.split(":")
    for path in reversed([str(Path(p)) for p in search_paths]):
        if path not in sys.path:
            sys.path.insert(0, path)
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        where = ", ".join(str(p) for p in search_paths)
        raise AblateError(f"{reference!r}: no module named {exc.name!r}"
                          + (f" in {where} or the installed packages" if where else "")) from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise AblateError(f"{reference!r}: importing {module_name!r} failed: "
                          f"{type(exc).__name__}: {' '.join(str(exc).split())}") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise AblateError(f"{reference!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise AblateError(f"{reference!r}: {attr!r} is a {type(obj).__name__}, not a function")
    return obj
